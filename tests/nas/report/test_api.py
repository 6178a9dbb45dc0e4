"""write_report and ``python -m nas report`` (nas/report/__init__.py): correlations.csv equals scipy's,
constant metrics are undefined, missing values are left out, top-k by hand, a study without validations."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest
from scipy import stats

from nas.report import write_report
from nas.validate import with_validation


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


def test_report_correlations_equal_scipy(reported):
    study, folder = reported.study, reported.folder
    assert reported.code == 0

    df = pd.read_csv(folder / "correlations.csv")
    every = df[df["subset"] == "all"]
    assert {"kappa_w", "kappa_w@early", "confusion", "loss_drop", "train_kappa_w"} <= set(every["metric"])
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
    # params is 1000 on every trial: nothing to rank by, so it is named under the table instead of ranked
    assert "params" not in set(df["metric"]) and "left out (the same value on every complete trial): params = 1000" in reported.out
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


def test_report_without_validation_counts_and_does_not_crash(tmp_path, validated_study):
    study = validated_study(tmp_path, "bare", n=4, validate=False)
    result = write_report(study, tmp_path / "bare")
    assert result.counts["complete, never validated"] == 4 and result.counts["state FAIL"] == 1
    assert result.html.exists() and result.csv.exists()
    assert (result.table["n"] == 0).all() and result.table["note"].str.startswith("undefined").all()
    assert (tmp_path / "bare" / "plots" / "pareto.png").exists()


def test_report_cli_names_the_best_validated_trial_or_says_why_there_is_none(tmp_path, validated_study, capsys):
    from nas.cli import main
    from nas.validate import validation_results

    study = validated_study(tmp_path, "named", n=4)
    assert main(["report", "--study", "named", "--runs-dir", str(tmp_path)]) == 0
    results = validation_results(study)
    params = {t.number: t.user_attrs.get("params", 0) for t in study.trials}
    # the rule: the highest final accuracy, ties by fewer parameters, then the lower number
    best = min(results, key=lambda n: (-results[n]["val_final_acc"], params[n], n))
    assert f"best trained trial: {best}, final test accuracy {results[best]['val_final_acc']:.4f}" in capsys.readouterr().out
    validated_study(tmp_path, "bare2", n=3, validate=False)
    assert main(["report", "--study", "bare2", "--runs-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no validated trial in study 'bare2'" in err and "python -m nas validate --study bare2" in err


def test_validate_without_a_complete_trial_is_one_line(tmp_path, capsys):
    import optuna

    from nas.cli import main

    db = tmp_path / "empty" / "study.db"
    db.parent.mkdir(parents=True)
    optuna.create_study(study_name="empty", storage=f"sqlite:///{db}")
    assert main(["validate", "--study", "empty", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no complete trial to validate" in err[0]
