"""benchmarks/tune_scheduler.py on the committed resnet lab table: without its gate the gradnas scheduler trains
exactly the configs Ray's ASHA trains; with it, it spends less and stops candidates only at iteration 0."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from nas.lab.tables import load

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "benchmarks" / "tables" / "resnet_mnist5k.csv.gz"


def _module():
    name = "tune_scheduler"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _pool(ts, seed=0):
    df = load(TABLE)
    bs = ts.bs
    perm = np.random.default_rng(seed).permutation(len(df))
    init, _ = bs.features_for(df.iloc[perm[: len(df) // 2]], 2.0)
    return bs.Pool(df.iloc[perm[len(df) // 2:]], 1.0, 0.0, init, init)


def test_without_the_gate_the_replay_trains_what_rays_asha_trains_and_pays_the_scoring_on_top():
    ts = _module()
    pool = _pool(ts)
    order = list(np.random.default_rng(1).permutation(pool.n))
    asha = ts.run_scheduler(pool, order, gate=False)
    ungated = ts.run_scheduler(pool, order, gate=True, quantile=None)
    assert ungated.gated == 0 and ungated.trained == asha.trained
    # the same epochs, plus every candidate's rung-0 scoring (1 step = 1 / steps-per-epoch epochs here)
    assert np.isclose(ungated.trace.cost - asha.trace.cost, pool.cost_init.sum())
    # every candidate ran its first epoch; the trained ones 2 more
    assert asha.trace.cost == pool.n + 2 * len(asha.trained)


def test_the_gate_stops_about_its_quantile_of_the_candidates_after_the_warmup_and_spends_less():
    ts = _module()
    pool = _pool(ts)
    order = list(np.random.default_rng(1).permutation(pool.n))
    asha = ts.run_scheduler(pool, order, gate=False)
    gated = ts.run_scheduler(pool, order, gate=True, quantile=0.5, warmup=5)
    assert 0.25 * pool.n < gated.gated < 0.75 * pool.n
    assert gated.trace.cost < asha.trace.cost
    # the warm-up candidates run before any gate decision: ASHA trains the same ones among them
    first = set(order[:5])
    assert set(gated.trained) & first == set(asha.trained) & first
