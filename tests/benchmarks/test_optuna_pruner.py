"""benchmarks/optuna_pruner.py: its 2-D hypervolume against rectangles summed by hand, the seeds' quantile rule,
and one replayed seed on the resnet lab table (costs add up, the gate prunes only after its warm-up)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name):
    if name in sys.modules:
        return sys.modules[name]
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


op = _load("optuna_pruner")


def test_hypervolume_by_hand():
    ref = (0.0, 10.0)
    # one point: the rectangle acc 0.5 x (10 - 4)
    assert op.hypervolume(np.array([[0.5, 4.0]]), ref) == pytest.approx(3.0)
    # staircase: (0.5, 4) and (0.8, 6): 0.5 * 6 + (0.8 - 0.5) * 4; a dominated point (0.4, 7) adds nothing
    pts = np.array([[0.8, 6.0], [0.5, 4.0], [0.4, 7.0]])
    assert op.hypervolume(pts, ref) == pytest.approx(0.5 * 6 + 0.3 * 4)
    # points outside the reference box count nothing
    assert op.hypervolume(np.array([[0.9, 11.0], [0.0, 1.0]]), ref) == 0.0


def test_seeds_quantile():
    hits = [3.0, 9.0, 6.0, math.inf]
    assert op.seeds_quantile(hits, 0.5) == 6.0  # 2nd smallest of 4
    assert op.seeds_quantile(hits, 0.8) == math.inf  # 4th: one seed never reached
    assert op.seeds_quantile(hits, 0.25) == 3.0


def test_one_replayed_seed_spends_what_it_trains():
    import optuna

    from nas.lab.tables import load

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    df = load(ROOT / "benchmarks" / "tables" / "resnet_mnist5k.csv.gz")
    _, pool = next(op.pools(df, seeds=1, seed0=0, max_cost=2.0))
    events = []
    study = op.run_study(pool, "TPE + GradientPruner", 0, 0.5, 5, on_trial=lambda c, i, p: events.append((c, i, p)))
    assert len(events) == pool.n == len(study.trials)
    trained = [i for _, i, _ in events if i is not None]
    pruned = [p for _, _, p in events]
    assert not any(pruned[:5]) and 0 < sum(pruned) < pool.n  # warm-up 5, then some pruned
    # cost: every trial's rung-0 scoring plus 3 epochs per trained config
    scored = [int(t.user_attrs["gradnas:init"] is not None) for t in study.trials]
    assert sum(scored) == pool.n
    assert events[-1][0] == pytest.approx(op.FULL * len(trained) + float(pool.cost_init.sum()))
