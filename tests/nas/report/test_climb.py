"""The report after a budget search: the climb per rung, how each rung's score predicted the next rung's
accuracy (Kendall tau with n), the "too small to judge" hint, and only informative metric columns.

The study is made by the real budget search (:func:`nas.search.budget.run_budget`) on the simulated
executor of tests/nas/search/fake_jobs.py, whose rung-0 results also carry what an evaluation without
early steps stores (``loss_early`` = ``loss_init``, ``loss_drop`` = 0). References: the executor's own log
of the jobs it ran (how many candidates each rung had), the fake's closed-form accuracy of a config
(``quality * (0.5 + 0.5 * epoch / epochs)``) and Kendall's tau-b counted pair by pair.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import optuna
import pytest
from scipy import stats

from nas.cli import main
from nas.report import write_report
from nas.report.climb import JUDGE_N, climb
from nas.report.gather import gather
from nas.report.stats import ALPHA
from nas.search.budget import run_budget
from nas.search.config import SearchConfig
from nas.search.keys import StudyFolder, validation_key
from nas.study import budget_objectives, default_storage, open_study, parse_objectives
from search_spaces import get_space

EPOCHS = 4


def _fake_jobs():
    name = "_gradnas_fake_jobs"  # the module tests/nas/search/test_budget.py loads, under the same name
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).resolve().parents[1] / "search" / "fake_jobs.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


fake = _fake_jobs()


class NoEarlySteps(fake.FakeCluster):
    """Rung-0 results as an evaluation without early steps stores them: loss_early = loss_init, no drop."""

    def wait(self):
        out = []
        for key, status, payload in super().wait():
            if status == "ok" and "loss_init" in payload:
                payload = {**payload, "loss_early": payload["loss_init"], "loss_drop": 0.0}
            out.append((key, status, payload))
        return out


def _kendall_by_pairs(x, y) -> float:
    """Kendall tau-b by counting pairs: (C - D) / sqrt((n0 - tx) (n0 - ty))."""
    c = d = tx = ty = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            sx, sy = (x[i] > x[j]) - (x[i] < x[j]), (y[i] > y[j]) - (y[i] < y[j])
            tx += sx == 0
            ty += sy == 0
            c += sx * sy > 0
            d += sx * sy < 0
    n0 = n * (n - 1) / 2
    return (c - d) / math.sqrt((n0 - tx) * (n0 - ty))


@pytest.fixture(scope="module")
def budget_study(tmp_path_factory):
    """A finished budget search: 15 rung-0 candidates on 1 worker, 4 epochs; its executor's job log. The
    search commits its state after every job: in memory (/dev/shm) the ~500 SQLite commits take no fsync
    (2-3 s instead of ~15 s on a loaded disk)."""
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None) as folder:
        yield _budget_search(Path(folder) / "runs")


def _budget_search(runs: Path):
    space = get_space("resnet_cifar").with_bounds(blocks=[1, 2], width=[8, 16], batch_size=[32, 128])
    objs = parse_objectives(budget_objectives())
    settings = {"space": "resnet_cifar", "bounds": space.bounds, "dataset": "mnist5k", "seed": 0, "mode": "budget",
                "objectives": [str(o) for o in objs], "constraints": [], "epochs": EPOCHS}
    study = open_study("climb", default_storage(runs, "climb"), objs, [], "random", 0, settings)
    cfg = SearchConfig(space="resnet_cifar", dataset="mnist5k", budget=60, workers=1, epochs=EPOCHS, trials=15,
                       stale_grace=3600, heartbeat_interval=3600, promotion="sync")
    cfg.mode, cfg.budget_s, cfg.bounds = "budget", 60.0, space.bounds
    cfg.metrics = ["az_expressivity", "grad_weight_ratio"]
    cluster = NoEarlySteps(1)
    stats_ = run_budget(study, space, cfg, objs, [], StudyFolder.of(runs, "climb"), (1, 28, 28), 4000,
                        clock=cluster.now, executor=cluster)
    return runs, study, cluster, stats_


def test_the_climb_counts_each_rung_as_the_executor_ran_it(budget_study):
    _, study, cluster, stats_ = budget_study
    c = climb(study, study.trials, [])
    jobs = Counter(kind for _, kind in cluster.log)
    trained = Counter(key for key, kind in cluster.log if kind == "train")
    rows = {r.rung: r for r in c.rungs}
    assert rows["init"].entered == rows["init"].finished == jobs["init"] == 15
    assert rows["early"].planned == 0 and jobs["early"] == 0  # the plan skipped it
    assert rows["short"].entered == len(trained) == stats_["rungs"]["short"]
    assert rows["full"].entered == sum(1 for n in trained.values() if n == 2) == stats_["rungs"]["full"]
    assert rows["short"].promoted_by.startswith("combined rung-0 score")
    assert rows["full"].promoted_by == "test accuracy after 1 epoch(s) (score@short)"


def test_rung_scores_are_correlated_with_the_next_rungs_accuracy(budget_study):
    _, study, _, _ = budget_study
    c = climb(study, study.trials, [])
    p = next(p for p in c.predictions if p.score == "score@init" and p.target == "short")
    short = [t for t in study.trials if t.user_attrs["rung"] in ("short", "full")]
    acc = [fake.quality(t.user_attrs["config"]) * (0.5 + 0.5 * 1 / EPOCHS) for t in short]  # closed form
    score = [t.user_attrs["score@init"] for t in short]
    assert p.corr["n"] == len(short) >= JUDGE_N and p.judged
    assert p.corr["kendall_tau"] == pytest.approx(_kendall_by_pairs(score, acc), abs=1e-9)


def test_the_report_says_n_is_too_small_and_lists_only_informative_columns(budget_study):
    runs, study, _, _ = budget_study
    result = write_report(study, runs / "climb")
    text = result.text
    finalists = sum(1 for t in study.trials if t.user_attrs["rung"] == "full")
    assert finalists < JUDGE_N
    assert f"{finalists} candidate(s) fully trained" in text and "too small to judge" in text
    assert "python -m nas validate --study climb --top 10 --epochs 4" in text
    metrics = set(result.table["metric"])
    assert {"az_expressivity", "relative_step"} <= metrics  # both objectives
    assert not metrics & {"loss_early", "loss_drop", "loss_init", "params"}  # the same on every trial
    assert "loss_drop = 0" in text and "params = 1000" in text  # said, not ranked
    assert "Budget search: the climb" in result.html.read_text()
    header = next(line for line in text.splitlines() if line.startswith("metric "))
    assert "tau(conv)" not in header and "tau(conv) left out: undefined for every metric (n < 3)" in text


def test_more_trained_labels_make_the_rung0_score_judged(budget_study, tmp_path):
    runs, _, _, _ = budget_study
    (tmp_path / "climb").mkdir()
    shutil.copy(runs / "climb" / "study.db", tmp_path / "climb" / "study.db")  # this test's own copy
    study = optuna.load_study(study_name="climb", storage=default_storage(tmp_path, "climb"))
    # what `validate --top K --epochs 4` stores for the trials it trains (the fake's accuracy after 4 epochs)
    extra = [t for t in study.trials if t.user_attrs["rung"] == "init"][:JUDGE_N]
    for t in extra:
        q = fake.quality(t.user_attrs["config"])
        study.set_user_attr(validation_key(t.number), {
            "val_best_acc": q, "val_final_acc": q, "val_epochs": EPOCHS, "val_converged": True,
            "val_diverged": False, "val_selected_by": "top"})
    data = gather(study, None)
    p = next(p for p in climb(study, data.trials, data.validated).predictions
             if p.score == "score@init" and p.target == "trained")
    labelled = [t for t in study.trials if t.user_attrs["rung"] == "full"] + extra
    by_pairs = _kendall_by_pairs([t.user_attrs["score@init"] for t in labelled],
                                 [fake.quality(t.user_attrs["config"]) for t in labelled])  # finalists: acc = q
    assert p.corr["n"] == len(labelled) and p.judged
    assert p.corr["kendall_tau"] == pytest.approx(by_pairs, abs=1e-9)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["report", "--study", "climb", "--runs-dir", str(tmp_path)]) == 0
    out = buf.getvalue()
    assert f"{by_pairs:+.3f} (n={len(labelled)}," in out
    assert "score@init vs trained" not in out  # only score@short is still too small to judge
    assert "score@short vs trained accuracy" in out


def test_judge_n_is_the_fewest_pairs_a_kendall_tau_can_be_significant_with():
    # a perfect order of n has exact two-sided p = 2 / n!
    assert 2 / math.factorial(JUDGE_N - 1) > ALPHA >= 2 / math.factorial(JUDGE_N)
    assert stats.kendalltau(range(JUDGE_N), range(JUDGE_N)).pvalue == pytest.approx(2 / math.factorial(JUDGE_N))


def test_a_study_without_a_budget_search_has_no_climb(reported):
    assert climb(reported.study, reported.study.trials, []) is None
    assert reported.code == 0 and "Budget search" not in reported.out
    header = next(line for line in reported.out.splitlines() if line.startswith("metric "))
    assert "tau(conv)" in header  # convergence varies over its validated trials: the column stays
