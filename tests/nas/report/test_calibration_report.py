"""The report's section on the budget search's in-study calibration (``python -m nas report --study NAME``).

The stored description is made by the search's own :func:`nas.search.rung0.rung0_scores` on a cohort whose
rung-0 metric ranks the labels backwards (so the learned direction is known: flipped), and stored on a real
SQLite study as the search stores it; the report must say it in a few lines.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from nas.cli import main
from nas.lab.calibration import MIN_LABELS, LabelSet
from nas.search.keys import CALIBRATION
from nas.search.rung0 import rung0_scores
from objectives.combine import BUDGET_INIT_FEATURES

PRIOR = [f for f in BUDGET_INIT_FEATURES if f.key not in ("batch_size", "lr")]


def _description(labelled: int) -> dict:
    rng = np.random.default_rng(1)
    q = rng.random(80)
    rows = [{**{f.key: (1.0 - x if f.direction == "maximize" else x) for f in PRIOR}, "lr": 0.1, "params": 1e3,
             "batch_size": float(rng.choice([32, 64, 128]))} for x in q]
    labels = [LabelSet("train_loss_last", "minimize", {i: 2.3 - q[i] for i in range(labelled - 2)}),
              LabelSet("short_test_acc", "maximize", {i: q[i] for i in range(2)})]
    desc = rung0_scores(rows, (), labels)[1]
    return {**desc, "refit_at": {"elapsed_s": 125.0, "cohort": 80, "time": "2026-01-01T00:00:00+00:00"}}


def _report(runs, name: str) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["report", "--study", name, "--runs-dir", str(runs)]) == 0
    return buf.getvalue()


def test_the_report_shows_what_the_calibration_learned(tmp_path, validated_study):
    study = validated_study(tmp_path, "cal")
    study.set_user_attr(CALIBRATION, _description(40))  # 38 losses + 2 accuracies: enough to flip the prior
    out = _report(tmp_path, "cal")
    lines = out[out.index("In-study calibration of the rung-0 score"):].splitlines()
    assert "rung-0 score calibrated on 40 labels (38 early-rung 50-step loss(es), 2 short-rung accuracy(ies)" in lines[1]
    flipped = lines[4]
    assert all(f.key in flipped for f in PRIOR) and "last refit after 2m05s of the search, ranking 80" in flipped
    learned, prior = lines[2], lines[3]
    assert all(f"{f.key} ({'min' if f.direction == 'maximize' else 'max'})" in learned for f in PRIOR)
    assert all(f"{f.key} ({f.direction[:3]}) x {f.weight:.3g}" in prior for f in PRIOR)
    assert "In-study calibration" in (tmp_path / "cal" / "report.html").read_text()


def test_the_report_says_when_there_were_too_few_labels(tmp_path, validated_study):
    study = validated_study(tmp_path, "few")
    study.set_user_attr(CALIBRATION, _description(MIN_LABELS - 1))
    out = _report(tmp_path, "few")
    assert f"not calibrated: {MIN_LABELS - 1} labels < minimum {MIN_LABELS}" in out


def test_a_study_without_calibration_has_no_such_section(reported):
    assert reported.code == 0 and "In-study calibration" not in reported.out
