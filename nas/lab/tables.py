"""Ground-truth tables of the proxy lab: loading them with the accuracy to rank, and their views.

Two kinds of table (``benchmarks/tables/``, DESIGN §8):

* a **population table** (:mod:`nas.lab.build`, ``benchmarks/proxy_vs_training.py``): one row per sampled
  config, every metric at initialization ``<m>``, after 20 steps ``<m>@early`` and after 50 steps ``<m>@50``,
  the loss baselines, and the best test accuracy of two trainings with different seeds;
* an **NB201 lab table** (``benchmarks/nb201_lab.py``): one row per NAS-Bench-201 cell, data-free and
  per-input metric columns (``kappa_w[mnist5k]``), the 200-epoch accuracies ``C10``, ``C100``, ``IN16``.

Phases: ``init`` (values at initialization), ``early`` (also the values after 20 steps) and ``50`` (also
the values after 50 steps, named as a search with ``--early-steps 50`` stores them: ``<m>@50`` ->
``<m>@early``, ``train_loss_last@50`` -> ``train_loss_last``, :func:`steps_view`). NB201 lab tables have
one phase, ``init``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from objectives.combine import DERIVED, DERIVED_INPUTS

__all__ = ["TRAINS", "PHASES", "NB201_TARGETS", "SEARCH_EARLY_STEPS", "STEP_VALUES", "from_steps", "is_nb201", "steps_view",
           "phase_table", "phases", "data_kinds", "with_data", "with_config", "load", "seed_ceiling"]

#: Mean best accuracy above which a config counts as "trains" (10 classes: chance is 0.1).
TRAINS = 0.5
PHASES = ("init", "early", "50")
#: Accuracy columns of an NB201 lab table (``benchmarks/nb201_lab.py``): 200-epoch test accuracy.
NB201_TARGETS = ("C10", "C100", "IN16")
#: The search's default number of early steps (``python -m nas search --early-steps``): the shipped early
#: feature set is chosen and judged on the table's values after this many steps.
SEARCH_EARLY_STEPS = 50
#: Values of the early steps that the search stores without the ``@early`` suffix.
STEP_VALUES = ("loss_early", "loss_drop", "train_loss_last", "train_kappa_w", "loss_curve")


def from_steps(key: str) -> bool:
    """Whether a derived feature (:data:`objectives.combine.DERIVED`) is computed from the early steps'
    values (:data:`STEP_VALUES`: ``train_loss_smooth_min`` from the loss curve)."""
    return key in DERIVED and bool(set(DERIVED_INPUTS.get(key, ())) & set(STEP_VALUES))


def is_nb201(df: pd.DataFrame) -> bool:
    return "config" not in df.columns and set(NB201_TARGETS) <= set(df.columns)


def steps_view(df: pd.DataFrame, tag: str = "50") -> pd.DataFrame:
    """The table as a search with ``tag`` early steps stores it: ``<m>@50`` -> ``<m>@early``,
    ``train_loss_last@50`` -> ``train_loss_last`` (likewise the other :data:`STEP_VALUES`)."""
    tail = f"@{tag}"
    renamed = {}
    for c in df.columns:
        if str(c).endswith(tail):
            base = c[: -len(tail)]
            renamed[c] = base if base in STEP_VALUES else f"{base}@early"
    # a stored value derived from the other steps' curve (train_loss_smooth_min of the 20 steps) is stale
    # once the curve is this many steps': feature_values computes it again from the renamed inputs
    stale = [d for d in DERIVED if from_steps(d) and d in df.columns and f"{d}{tail}" not in df.columns
             and any(renamed.get(f"{i}{tail}") == i for i in DERIVED_INPUTS[d])]
    out = df.drop(columns=[v for v in renamed.values() if v in df.columns] + stale).rename(columns=renamed)
    out.attrs.update(df.attrs)
    return out


def phase_table(df: pd.DataFrame, phase: str) -> tuple[pd.DataFrame, str]:
    """(table, phase of its keys): phase ``"50"`` is the ``"early"`` phase of :func:`steps_view`."""
    return (steps_view(df), "early") if phase == "50" else (df, phase)


def phases(df: pd.DataFrame) -> tuple[str, ...]:
    """The phases a table has: NB201 cells are scored at initialization only."""
    return ("init",) if df.attrs.get("nb201") else PHASES


def data_kinds(df: pd.DataFrame) -> list[str]:
    """The inputs of an NB201 lab's data-dependent columns (``kappa_w[mnist5k]`` -> ``mnist5k``)."""
    return sorted({c[c.index("[") + 1:-1] for c in df.columns if c.endswith("]") and "[" in c})


def with_data(df: pd.DataFrame, data: str) -> pd.DataFrame:
    """``df`` plus plain metric columns taken from ``<metric>[data]`` (the names combine's features use)."""
    extra = {c[: c.index("[")]: df[c] for c in df.columns if c.endswith(f"[{data}]")}
    return pd.concat([df, pd.DataFrame(extra, index=df.index)], axis=1)


def with_config(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` plus the config's keys as columns (``lr``, ``batch_size``, ...), as a study's trials table has."""
    if "config" not in df.columns:
        return df
    configs = pd.DataFrame([json.loads(c) if isinstance(c, str) else {} for c in df["config"]], index=df.index)
    return pd.concat([df, configs[[k for k in configs.columns if k not in df.columns]]], axis=1)


def load(path: str | Path, target: str = "C10") -> pd.DataFrame:
    """The table with ``acc``: for a population table the config expanded into columns and the mean best
    accuracy of the seeds; for an NB201 lab table the ``target`` accuracy (C10, C100 or IN16, %). Rows
    without an accuracy are left out."""
    df = pd.read_csv(path)
    if is_nb201(df):
        df["acc"] = pd.to_numeric(df[target], errors="coerce") / 100.0
        df.attrs.update(nb201=True, target=target)
        return df[df["acc"].notna()].reset_index(drop=True)
    df = with_config(df).copy()
    val = pd.to_numeric(df.get("val_best_acc"), errors="coerce")
    rep = pd.to_numeric(df.get("rep_best_acc"), errors="coerce") if "rep_best_acc" in df else val * np.nan
    df["acc"] = pd.concat([val, rep], axis=1).mean(axis=1, skipna=True)
    return df[df["acc"].notna()].reset_index(drop=True)


def seed_ceiling(df: pd.DataFrame) -> dict[str, tuple[float, int]]:
    """Seed-to-seed Kendall tau of the two trainings' best accuracies (the ceiling no proxy can beat), with
    n, over all configs trained twice, those that train (:data:`TRAINS`) and the top quarter."""
    if "rep_best_acc" not in df.columns:
        return {}
    both = df[pd.to_numeric(df["rep_best_acc"], errors="coerce").notna()
              & pd.to_numeric(df["val_best_acc"], errors="coerce").notna()]
    out = {}
    for label, rows in (("all", both), ("trains", both[both["acc"] > TRAINS]),
                        ("top quarter", both[both["acc"] >= both["acc"].quantile(0.75)])):
        if len(rows) >= 3:
            out[label] = (float(stats.kendalltau(rows["val_best_acc"], rows["rep_best_acc"]).statistic), len(rows))
        else:
            out[label] = (float("nan"), len(rows))
    return out
