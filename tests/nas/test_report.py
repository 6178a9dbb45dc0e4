"""The validation report (nas/report.py, ``python -m nas report``): correlations equal scipy's, constant
metrics are undefined, counts of failed / unvalidated / diverged trials, HTML with images that exist."""

from __future__ import annotations

import base64
import math
import random
from html.parser import HTMLParser
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution
from scipy import stats

import objectives
from nas.cli import main
from nas.report import correlate, topk_hits, write_report
from nas.study import (
    DEFAULT_CONSTRAINTS, DEFAULT_OBJECTIVES, default_storage, open_study, parse_constraint, parse_objectives,
)
from nas.validate import VAL_KEY, with_validation
from search_spaces import get_space

BOUNDS = {"blocks": 1, "width": 8, "batch_size": 32, "norm": "bn", "lr": [0.01, 0.05]}


def make_validated_study(runs: Path, name: str, n: int = 8, validate: bool = True) -> optuna.Study:
    """n complete trials with made-up metrics and validation results (4 'pareto', the rest 'random'; trial 1
    diverged, trial n-1 never validated), one FAIL trial; ``params`` is constant, ``kappa_x`` missing on
    trial 0 (a non-finite value is stored as None)."""
    space = get_space("resnet_cifar", **BOUNDS)
    objs = parse_objectives(DEFAULT_OBJECTIVES)
    cons = [parse_constraint(c) for c in DEFAULT_CONSTRAINTS]
    settings = {"space": "resnet_cifar", "bounds": space.bounds, "dataset": "synthetic",
                "objectives": [str(o) for o in objs], "constraints": [str(c) for c in cons], "seed": 0}
    study = open_study(name, default_storage(runs, name), objs, cons, "random", 0, settings)
    rng = random.Random(3)
    dist = {"lr": FloatDistribution(0.01, 0.05, log=True)}
    for i in range(n):
        lr = rng.uniform(0.01, 0.05)
        result = {m: rng.uniform(0.1, 2.0) for m in objectives.DEFAULT_METRICS}
        result.update({f"{m}@early": rng.uniform(0.1, 2.0) for m in objectives.DEFAULT_METRICS})
        result.update(loss_drop=rng.uniform(-0.1, 0.3), params=1000.0, rank_input=rng.uniform(0.05, 0.3),
                      train_kappa_w=rng.uniform(1, 100))
        if i == 0:
            result["kappa_x"] = None
        violations = {f"constraints:{c}": c.violation(result) for c in cons}
        study.add_trial(optuna.trial.create_trial(
            params={"lr": lr}, distributions=dist, values=[result[o.key] for o in objs],
            user_attrs={**result, "config": space.validate({"lr": lr}), "seed": i,
                        "feasible": all(v <= 0 for v in violations.values())},
            system_attrs=violations))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL,
                                              user_attrs={"fail_reason": "non-finite training loss at early step 3"}))
    if validate:
        for i in range(n - 1):
            acc = rng.uniform(0.1, 0.9)
            diverged = i == 1
            study.set_user_attr(VAL_KEY.format(i), {
                "val_final_acc": 0.0 if diverged else acc - 0.01, "val_best_acc": 0.0 if diverged else acc,
                "val_final_train_loss": None if diverged else 2.3 * (1 - acc),
                "val_loss_curve": [] if diverged else [2.0, 2.3 * (1 - acc)],
                "val_acc_curve": [] if diverged else [acc / 2, acc], "val_epochs_to_90": None if diverged else 2,
                "val_converged": (not diverged) and 2.3 * (1 - acc) < 0.5 * math.log(10),
                "val_converged_threshold": 0.5 * math.log(10), "val_diverged": diverged, "val_epochs": 2,
                "val_selected_by": "pareto" if i < 4 else "random"})
    return study


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])


def _columns(study: optuna.Study, key: str, target: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for t in with_validation(study):
        a = t.user_attrs
        if t.state.name != "COMPLETE" or a.get("val_epochs") != 2:
            continue
        x, y = a.get(key), a.get(target)
        if x is None or y is None:
            continue
        xs.append(float(x))
        ys.append(float(y))
    return xs, ys


def test_report_files_correlations_and_counts(tmp_path, capsys):
    study = make_validated_study(tmp_path, "rep")
    assert main(["report", "--study", "rep", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "rep"
    assert "state FAIL: 1" in out and "complete, never validated: 1" in out and "used: diverged: 1" in out
    assert "undefined" in out and "confusion" in out

    df = pd.read_csv(folder / "correlations.csv")
    every = df[df["subset"] == "all"]
    assert {"kappa_w", "kappa_w@early", "confusion", "loss_drop", "params", "train_kappa_w"} <= set(every["metric"])
    checked = 0
    for _, row in every.iterrows():
        xs, ys = _columns(study, row["metric"], row["target"])
        assert row["n"] == len(xs), row["metric"]
        if len(set(xs)) < 2 or len(set(ys)) < 2:
            assert pd.isna(row["kendall_tau"]) and str(row["note"]).startswith("undefined")
            continue
        tau, rho = stats.kendalltau(xs, ys), stats.spearmanr(xs, ys)
        assert row["kendall_tau"] == pytest.approx(tau.statistic, abs=1e-12)
        assert row["kendall_p"] == pytest.approx(tau.pvalue, abs=1e-12)
        assert row["spearman_rho"] == pytest.approx(rho.statistic, abs=1e-12)
        assert row["spearman_p"] == pytest.approx(rho.pvalue, abs=1e-12)
        assert row["significant"] == (tau.pvalue <= 0.05)
        checked += 1
    assert checked >= 20
    params = every[(every["metric"] == "params") & (every["target"] == "val_best_acc")].iloc[0]
    assert pd.isna(params["kendall_tau"]) and params["note"] == "undefined: metric constant" and params["n"] == 7
    kx = every[(every["metric"] == "kappa_x") & (every["target"] == "val_best_acc")].iloc[0]
    assert kx["n"] == 6  # the None value is left out, not the trial's other values
    assert set(df["subset"]) == {"all", "random"}
    assert (df[df["subset"] == "random"]["n"] <= 3).all()

    # top-k hit rate by hand for one metric (confusion: lower is better), k = max(1, 7 // 4) = 1
    row = every[(every["metric"] == "confusion") & (every["target"] == "val_best_acc")].iloc[0]
    trials = [t for t in with_validation(study) if t.user_attrs.get("val_epochs") == 2]
    best_metric = min(trials, key=lambda t: t.user_attrs["confusion"]).number
    best_acc = max(trials, key=lambda t: t.user_attrs["val_best_acc"]).number
    assert row["topk_k"] == 1 and row["topk_hits"] == int(best_metric == best_acc)

    plots = {p.name for p in (folder / "plots").glob("*.png")}
    assert {"pareto.png", "scatter_confusion.png", "scatter_diversity.png", "scatter_kappa_w.png",
            "convergence_rank_input.png", "curves.png"} <= plots
    parser = _Images()
    parser.feed((folder / "report.html").read_text(encoding="utf-8"))
    assert len(parser.srcs) >= len(plots)
    for src in parser.srcs:
        if src.startswith("data:"):
            head, payload = src.split(",", 1)
            assert head == "data:image/png;base64"
            assert base64.b64decode(payload).startswith(b"\x89PNG\r\n\x1a\n")
        else:
            assert (folder / src).is_file(), src


def test_correlate_and_topk_edge_cases():
    assert correlate([1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4])["note"] == "undefined: metric constant"
    assert correlate([1, 2, 3, 4], [0.5] * 4)["note"] == "undefined: target constant"
    c = correlate([1, 2, None, float("nan"), 5], [0.1, 0.2, 0.3, 0.4, 0.2])
    assert c["n"] == 3 and c["kendall_tau"] == pytest.approx(stats.kendalltau([1, 2, 5], [0.1, 0.2, 0.2]).statistic)
    assert correlate([1, 2], [1, 2])["note"] == "undefined: n < 3"
    assert correlate([1, 2, 3], [True, False, True])["n"] == 3  # booleans count as 0/1
    hit = topk_hits([3, 2, 1, 0], [0.1, 0.2, 0.3, 0.4], [0, 1, 2, 3], "minimize", k=2)
    assert hit["topk_hits"] == 2 and hit["topk_rate"] == 1.0 and hit["topk_chance"] == 0.5
    miss = topk_hits([3, 2, 1, 0], [0.1, 0.2, 0.3, 0.4], [0, 1, 2, 3], "maximize", k=2)
    assert miss["topk_hits"] == 0
    assert topk_hits([1, 1, 1], [0.1, 0.2, 0.3], [0, 1, 2], "minimize")["topk_hits"] is None


def test_report_without_validation_counts_and_does_not_crash(tmp_path):
    study = make_validated_study(tmp_path, "bare", n=4, validate=False)
    result = write_report(study, tmp_path / "bare")
    assert result.counts["complete, never validated"] == 4 and result.counts["state FAIL"] == 1
    assert result.html.exists() and result.csv.exists()
    assert (result.table["n"] == 0).all() and result.table["note"].str.startswith("undefined").all()
    assert (tmp_path / "bare" / "plots" / "pareto.png").exists()
