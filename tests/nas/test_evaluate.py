"""One trial in process: values at both phases, derived values, gradient transforms in the early steps."""

import math

import pytest

from objectives.combine import DERIVED
from nas.evaluate import TrialSpec, evaluate
from nas.search.keys import DERIVED_KEYS, EARLY_SUFFIX

CONFIG = {"blocks": 1, "width": 8, "batch_size": 32, "lr": 0.05}
METRICS = ["kappa_w", "confusion", "rank_input"]


def spec(metrics=METRICS, **config):
    return TrialSpec(space="resnet_cifar", config={**CONFIG, **config}, dataset="synthetic",
                     metrics=metrics, early_steps=4, probe_size=32, metric_options={"group_size": 4})


def test_evaluate_returns_every_metric_at_both_phases():
    out = evaluate(spec())
    for m in METRICS:
        assert math.isfinite(out[m]) and math.isfinite(out[m + EARLY_SUFFIX])
    for k in DERIVED_KEYS:
        if k.split("@")[0] not in DERIVED or k.startswith(("train_loss_smooth_min", "log_lr")):
            assert k in out, k
    assert "relative_step" not in out  # needs grad_weight_ratio, which was not scored
    assert len(out["loss_curve"]) == 4
    assert out["loss_drop"] == pytest.approx((out["loss_init"] - out["loss_early"]) / out["loss_init"])
    assert out["device"] == "cpu"
    again = evaluate(spec())
    assert again["kappa_w"] == out["kappa_w"] and again["loss_curve"] == out["loss_curve"]


def test_derived_features_of_the_combined_score():
    out = evaluate(spec(["grad_weight_ratio", "kappa_w"], lr=0.05))
    assert out["relative_step"] == pytest.approx(0.05 * out["grad_weight_ratio"])
    assert out["relative_step@early"] == pytest.approx(0.05 * out["grad_weight_ratio@early"])
    assert out["relative_gradient_change"] == pytest.approx(0.05 * out["grad_weight_ratio"] * out["kappa_w"])
    m, low = out["loss_curve"][0], float("inf")
    for v in out["loss_curve"]:
        m = 0.9 * m + 0.1 * v
        low = min(low, m)
    assert out["train_loss_smooth_min"] == pytest.approx(low)


def test_grad_transform_changes_the_early_steps():
    curves = {t: evaluate(spec(["rank_input"], grad_transform=t))["loss_curve"] for t in ("none", "gan", "gc", "zscore")}
    assert all(len(c) == 4 and all(math.isfinite(v) for v in c) for c in curves.values())
    assert curves["none"][0] == curves["gan"][0]  # the first loss is before any step
    for t in ("gan", "gc", "zscore"):
        assert curves[t][1:] != curves["none"][1:], t


def test_an_undefined_metric_is_a_value_not_a_failed_trial():
    # group_size 32 on a 32-example probe leaves one group: confusion is undefined for this candidate
    s = TrialSpec(space="resnet_cifar", config=CONFIG, dataset="synthetic", metrics=["confusion", "rank_input"],
                  early_steps=2, probe_size=32, metric_options={"group_size": 32})
    out = evaluate(s)
    assert math.isnan(out["confusion"]) and math.isnan(out["confusion" + EARLY_SUFFIX])
    assert math.isfinite(out["rank_input"]) and math.isfinite(out["rank_input" + EARLY_SUFFIX])
    assert set(out["metric_errors"]) == {"confusion", "confusion" + EARLY_SUFFIX}
    assert "group_size" in out["metric_errors"]["confusion"]
    assert evaluate(spec())["metric_errors"] == {}
