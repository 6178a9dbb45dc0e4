"""nas.lab.evidence: measured directions per phase, signs marked stable or unstable across two labs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nas.lab.evidence import measure, other_lab_direction
from nas.lab.selection import measured_direction
from nas.lab.tables import load, steps_view


def test_measure_gives_each_metric_its_direction_per_phase(toy_path):
    df = load(toy_path)
    ev = measure(df, "toy")
    d, t = measured_direction(df, "kappa_w")
    assert ev["kappa_w"]["init"] == (d, round(t, 3), 60, "toy", None) and d == "maximize"
    assert set(ev) == {"kappa_w", "confusion", "params"}  # registered metrics only, not the losses
    assert "early" not in ev["confusion"]  # no confusion@early / confusion@50 column
    # early = after the search's default 50 steps: the table's kappa_w@50 replaces its 20-step kappa_w@early
    grown = df.assign(**{"kappa_w@50": -df["acc"]})
    assert measured_direction(steps_view(grown), "kappa_w@early") == ("minimize", 1.0)
    assert measure(grown, "toy")["kappa_w"]["early"] == ("minimize", 1.0, 60, "toy", None)


def test_evidence_marks_signs_stable_or_unstable_across_labs(toy_path):
    df = load(toy_path)  # kappa_w: maximized on this lab
    acc = np.linspace(0.5, 0.9, 30)
    for sign, stable in ((1.0, True), (-1.0, False)):
        other = pd.DataFrame({"acc": acc, "kappa_w[mnist5k]": sign * acc, "confusion[gaussian]": acc})
        assert other_lab_direction(other, "kappa_w") == ("maximize" if sign > 0 else "minimize")
        ev = measure(df, "toy", other)
        assert ev["kappa_w"]["init"][4] is stable
        assert "early" not in ev["kappa_w"] or ev["kappa_w"]["early"][4] is None  # judged at init only
    assert measure(df, "toy", pd.DataFrame({"acc": acc}))["kappa_w"]["init"][4] is None  # not measured there
