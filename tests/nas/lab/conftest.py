"""A constructed population table whose answers are known (shared by the nas.lab tests)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest


def toy_table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """kappa_w ranks accuracy in reverse of the paper (higher is better), confusion is noise, the loss
    after 20 steps ranks it well; a NaN kappa_w (undefined) goes with the worst accuracies."""
    rng = np.random.default_rng(seed)
    acc = rng.random(n)
    kappa_w = acc + 0.3 * rng.standard_normal(n)
    kappa_w[np.argsort(acc)[:3]] = np.nan
    rows = []
    for i in range(n):
        rows.append({"index": i, "config": json.dumps({"lr": 0.1, "batch_size": 32}), "eval_status": "ok",
                     "val_best_acc": acc[i] + 0.01 * rng.standard_normal(), "rep_best_acc": acc[i],
                     "kappa_w": kappa_w[i], "kappa_w@early": kappa_w[i], "confusion": rng.random(),
                     "train_loss_last": 2.0 - acc[i] + 0.2 * rng.standard_normal(),
                     "train_loss_last@50": 2.0 - acc[i], "params": rng.random()})
    return pd.DataFrame(rows)


@pytest.fixture
def toy() -> pd.DataFrame:
    return toy_table()


@pytest.fixture
def toy_path(tmp_path):
    path = tmp_path / "t.csv.gz"
    toy_table().to_csv(path, index=False)
    return path
