"""The gradnas Ray Tune scheduler: its decisions against hand computations, Ray's own ASHA and a brute-force
rank rule; real Tune runs on CPU (one module-scoped Ray instance), one with Tune's OptunaSearch."""

from __future__ import annotations

import math
import random
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("ray.tune")
import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler, TrialScheduler  # noqa: E402

from nas.integrations.tune import PREFIX, GradientScheduler, report_gradients  # noqa: E402
from nas.integrations.tune_rungs import CONTINUE, STOP, Promotions, milestones  # noqa: E402
from objectives.combine import BUDGET_INIT_FEATURES, Feature  # noqa: E402


# ------------------------------------------------------------------ decisions without Ray
def test_milestones_are_the_powers_of_the_reduction_factor_up_to_max_t():
    assert milestones(1, 3, 9) == [1, 3, 9]
    assert milestones(1, 3, 8) == [1, 3]
    assert milestones(2, 2, 17) == [2, 4, 8, 16]


def test_single_metric_halving_decides_as_rays_asha_on_interleaved_results():
    # reference: Ray's own ASHAScheduler, fed the same asynchronous stream of (trial, time, value)
    rng = random.Random(0)
    ray_asha = ASHAScheduler(metric="m", mode="min", max_t=27, grace_period=1, reduction_factor=3)
    ours = Promotions(["min"], grace_period=1, reduction_factor=3, max_t=27, quantile=None)
    trials = [SimpleNamespace(trial_id=f"t{i}") for i in range(40)]
    for t in trials:
        ray_asha.on_trial_add(None, t)
    clock = {t.trial_id: 0 for t in trials}
    live = list(trials)
    decisions = 0
    while live:
        t = rng.choice(live[:6])  # six running at a time, results interleaved
        clock[t.trial_id] += rng.choice([1, 1, 2])  # some results skip a rung
        value = rng.random()
        expected = ray_asha.on_trial_result(None, t, {"training_iteration": clock[t.trial_id], "m": value})
        got = ours.on_result(t.trial_id, clock[t.trial_id], [value])
        assert got == expected, (t.trial_id, clock[t.trial_id], value)
        decisions += 1
        if expected == TrialScheduler.STOP or got == STOP:
            live.remove(t)
    assert decisions > 80
    assert sum(len(r) for _, r in ours.rungs) > 40


def test_a_nan_metric_is_stopped_at_a_rung_and_left_out_of_the_percentile():
    p = Promotions(["max"], grace_period=1, reduction_factor=2, max_t=8, quantile=None)
    assert p.on_result("a", 1, [float("nan")]) == CONTINUE  # nothing earlier at the rung
    assert p.on_result("b", 1, [0.2]) == CONTINUE  # the earlier NaN is left out: no finite value before it
    assert p.on_result("c", 1, [float("nan")]) == STOP  # a diverged run is the worst (Ray's ASHA keeps it)
    assert p.on_result("d", 1, [0.1]) == STOP  # median of the finite earlier values (0.2) -> below
    assert p.on_result("b", 1.5, [0.9]) == CONTINUE  # between rungs: no decision


def test_several_metrics_are_halved_by_nondominated_rank_hand_computed():
    # (accuracy max, params min), one rung at t=1, reduction factor 2: stopped when more than half the
    # earlier candidates at the rung have a better (smaller) non-dominated rank than the candidate.
    p = Promotions(["max", "min"], grace_period=1, reduction_factor=2, max_t=4, quantile=None)
    assert p.on_result("a", 1, [0.5, 100]) == CONTINUE  # nothing earlier
    # b: (0.4, 200) dominated by a -> ranks a 1, b 2: 1 earlier better > 1/2 -> stop
    assert p.on_result("b", 1, [0.4, 200]) == STOP
    # c: (0.6, 300) vs a (0.5, 100), b: a and c are the front (rank 1), b rank 2 -> 0 better -> continue
    assert p.on_result("c", 1, [0.6, 300]) == CONTINUE
    # d: (0.45, 150): dominated by a only; b dominated by a -> fronts {a, c}, {b, d}: 2 better > 3/2 -> stop
    assert p.on_result("d", 1, [0.45, 150]) == STOP
    # e: (0.3, 50): nothing dominates it -> rank 1 -> continue; a NaN accuracy ranks last -> stop
    assert p.on_result("e", 1, [0.3, 50]) == CONTINUE
    assert p.on_result("f", 1, [float("nan"), 10]) == CONTINUE  # params 10 is the best: still on the front
    assert p.on_result("g", 1, [float("nan"), 400]) == STOP
    assert p.on_result("a", 4, [0.9, 100]) == STOP  # max_t reached


def test_the_gate_stops_below_the_quantile_of_the_earlier_scores_hand_computed():
    # one feature (maximized): the combined score of a cohort of n is log(rank / n)
    p = Promotions(["max"], quantile=0.5, warmup=2, features=[Feature("az", "maximize")])
    seq = {"t0": 5, "t1": 1, "t2": 3, "t3": 4, "t4": 2, "t5": 6}
    got = {k: p.gate(k, {"az": v}) for k, v in seq.items()}
    # t2: cohort (5, 1, 3): earlier scores log 1, log 1/3 -> median -0.549; own log 2/3 = -0.405 -> continue
    # t3: (5, 1, 3, 4): earlier log 1, log 1/4, log 2/4 -> median -0.693; own log 3/4 -> continue
    # t4: (5, 1, 3, 4, 2): earlier log 5/5, 1/5, 3/5, 4/5 -> median -0.367; own log 2/5 = -0.916 -> stop
    assert got == {"t0": CONTINUE, "t1": CONTINUE, "t2": CONTINUE, "t3": CONTINUE, "t4": STOP, "t5": CONTINUE}
    assert p.gate("t4", {"az": 100}) == STOP  # a repeated report keeps the first decision
    assert len(p.rung0) == 6


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "maximize"}, "mode must be"),
    ({"reduction_factor": 1}, "reduction_factor"),
    ({"grace_period": 5, "max_t": 2}, "max_t"),
    ({"quantile": 1.5}, "quantile"),
    ({"warmup": -1}, "warmup"),
    ({"metric": ["a", "b"], "mode": ["max", "min", "max"]}, "modes"),
])
def test_bad_settings_are_one_line_errors_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GradientScheduler(**{"metric": "acc", "mode": "max", **kwargs})


# ------------------------------------------------------------------ real Tune runs
@pytest.fixture(scope="module")
def ray_local():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()


def _fit(trainable, space, scheduler, tmp_path, **tune_config):
    return tune.Tuner(trainable, param_space=space,
                      tune_config=tune.TuneConfig(scheduler=scheduler, max_concurrent_trials=1, **tune_config),
                      run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0)).fit()


GATE = {0: 5.0, 1: 1.0, 2: 3.0, 3: 4.0, 4: 2.0, 5: 6.0}  # the rung-0 feature of each trial


def _grid_trainable(config):
    i = config["i"]
    tune.report({PREFIX + "az": GATE[i], "acc": 0.0})
    for epoch in range(1, 4):
        tune.report({"acc": GATE[i] * epoch / 10})


@pytest.mark.integration
def test_a_tune_run_stops_by_the_gate_then_by_halving_as_computed_by_hand(ray_local, tmp_path):
    sched = GradientScheduler(metric="acc", mode="max", max_t=3, grace_period=1, reduction_factor=3,
                              quantile=0.5, warmup=2, features=[Feature("az", "maximize")])
    grid = _fit(_grid_trainable, {"i": tune.grid_search(list(GATE))}, sched, tmp_path)
    results = {r.config["i"]: r.metrics["training_iteration"] for r in grid}
    # gate (previous test's hand computation): trial 4 stopped at its gradient report (1 result).
    # rung 1 (epoch 1, accuracy a_i / 10), Ray's rule: below the 66.7th percentile of the earlier values:
    #   0: first -> on; 1: 0.1 < 0.5 -> stop; 2: 0.3 < 0.1 + 2/3 * 0.4 = 0.367 -> stop;
    #   3: 0.4 >= percentile of (0.1, 0.3, 0.5) = 0.367 -> on; 5: 0.6 -> on. Survivors stop at max_t = 3.
    assert results == {0: 4, 1: 2, 2: 2, 3: 4, 4: 1, 5: 4}
    assert [k for k, d in sched.promotions.decisions.items() if d.prune] == [
        r.metrics["trial_id"] for r in grid if r.config["i"] == 4]


def _loader(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return x, (x[:, 0] > 0).long()


def _mlp_trainable(config):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = _loader()
    model = nn.Sequential(nn.Linear(8, config["width"]), nn.ReLU(), nn.Linear(config["width"], 2))
    params = float(sum(p.numel() for p in model.parameters()))
    # lr: read from the config by the scheduler; "started" orders the trials in the test
    report_gradients(model, (x[:32], y[:32]), metrics={"acc": 0.0, "params": params, "started": time.time()})
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"])
    for _ in range(3):
        for _ in range(5):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        acc = float((model(x).argmax(1) == y).float().mean())
        tune.report({"acc": acc, "params": params})


def _reference_gate(rows, quantile, warmup):
    """Brute force: log-rank sums (average ranks of ties, NaN last) of the rung-0 features over the cohort
    earlier + [candidate]; stopped when below numpy's quantile of the earlier scores."""
    stopped = []
    for n in range(len(rows)):
        cohort = rows[: n + 1]
        total = np.zeros(n + 1)
        for f in BUDGET_INIT_FEATURES:
            v = np.array([r["az_expressivity"] if f.key == "az_expressivity" else
                          r["batch_size"] if f.key == "batch_size" else r["lr"] * r["grad_weight_ratio"]
                          for r in cohort], dtype=float)
            v = v if f.direction == "maximize" else -v
            v = np.where(np.isfinite(v), v, -np.inf)
            ranks = [sum(w < u for w in v) + (sum(w == u for w in v) + 1) / 2 for u in v]
            total += f.weight * np.log(np.array(ranks) / (n + 1))
        stopped.append(n >= warmup and n > 0 and total[n] < np.quantile(total[:n], quantile))
    return stopped


@pytest.mark.slow  # a second Tune run, real models: ~10 s on a quiet 2-core machine, a minute on a busy one
@pytest.mark.integration
def test_with_optunasearch_and_two_metrics_a_real_model_is_gated_by_its_gradients(ray_local, tmp_path):
    from ray.tune.search.optuna import OptunaSearch

    metrics, modes = ["acc", "params"], ["max", "min"]
    sched = GradientScheduler(metric=metrics, mode=modes, max_t=2, grace_period=1, reduction_factor=2,
                              quantile=0.5, warmup=2)
    search = OptunaSearch(metric=metrics, mode=modes, seed=0)
    space = {"width": tune.randint(2, 64), "lr": tune.loguniform(1e-3, 1.0)}
    grid = _fit(_mlp_trainable, space, sched, tmp_path, search_alg=search, num_samples=7)
    assert len(grid) == 7 and not grid.errors
    trials = sorted(grid, key=lambda r: r.metrics_dataframe["started"].iloc[0])  # one at a time: run order
    rows = [{k[len(PREFIX):]: v for k, v in r.metrics_dataframe.iloc[0].items() if str(k).startswith(PREFIX)}
            for r in trials]
    assert all(math.isfinite(r["az_expressivity"]) and math.isfinite(r["grad_weight_ratio"]) for r in rows)
    assert all("lr" not in r and r["batch_size"] == 32 for r in rows)  # lr read from the config by the scheduler
    for r, t in zip(rows, trials):
        r["lr"] = t.config["lr"]
    stopped_at_once = [r.metrics["training_iteration"] == 1 for r in trials]
    assert stopped_at_once == _reference_gate(rows, 0.5, 2)
    # rung 1 (first epoch), reduction factor 2, by non-dominated rank among the earlier survivors; the
    # survivors are stopped at max_t = 2 (their third result)
    earlier, expected = [], []
    for r, gated in zip(trials, stopped_at_once):
        if gated:
            continue
        first = r.metrics_dataframe.iloc[1]
        v = (-first["acc"], first["params"])
        rank = _front_rank([*earlier, v])
        better = sum(rank[j] < rank[-1] for j in range(len(earlier)))
        expected.append(2 if better > len(earlier) / 2 else 3)
        earlier.append(v)
    assert [r.metrics["training_iteration"] for r, g in zip(trials, stopped_at_once) if not g] == expected


def _front_rank(points):
    """Non-dominated sorting by peeling fronts (minimize every coordinate), written out independently."""
    left, rank, out = set(range(len(points))), 0, {}
    while left:
        rank += 1
        front = {i for i in left if not any(all(a <= b for a, b in zip(points[j], points[i])) and points[j] != points[i]
                                             for j in left)}
        out.update(dict.fromkeys(front, rank))
        left -= front
    return [out[i] for i in range(len(points))]
