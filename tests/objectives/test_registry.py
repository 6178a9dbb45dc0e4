"""The metric registry: lookup, filters, metadata, duplicate and bad registrations."""

import pytest

from objectives import registry
from objectives.registry import register_metric

THESIS = [
    "kappa_w", "min_cosine", "weight_diversity", "weight_coherence", "kappa_x",
    "confusion", "diversity", "coherence", "rank_input", "rank_weight",
]


def test_registry_lists_thesis_metrics_with_metadata():
    for name in THESIS:
        e = registry.get(name)
        assert e.direction in ("minimize", "maximize")
        assert e.citation and e.summary
    with pytest.raises(KeyError, match="valid metrics: .*kappa_w"):
        registry.get("kappa")
    assert registry.names("rank_*") == ["rank_input", "rank_weight"]


def test_docstring_example_works():
    assert registry.names("rank_*") == ["rank_input", "rank_weight"]
    assert sorted(registry.names(family="thesis")) == sorted(THESIS + ["grad_weight_ratio"])
    assert "snip" in registry.names(family="zero_cost") and "snip" not in registry.names(family="thesis")
    e = registry.get("confusion")
    assert e.direction == "minimize"
    assert (e.file, e.test) == ("objectives/thesis/confusion.py", "tests/objectives/thesis/test_confusion.py")
    assert registry.names(exclude="*") == []


def test_duplicate_and_bad_registrations_raise():
    with pytest.raises(ValueError, match="already registered"):
        register_metric("kappa_w", direction="minimize")(lambda m, x, y: 0.0)
    with pytest.raises(ValueError, match="direction"):
        register_metric("new_metric_x", direction="up")
    with pytest.raises(ValueError, match="needs"):
        register_metric("new_metric_x", direction="minimize", needs=("magic",))
    with pytest.raises(ValueError, match="cost"):
        register_metric("new_metric_x", direction="minimize", cost="huge")
    assert "new_metric_x" not in registry.names()


def test_measured_directions_come_from_the_evidence_module(monkeypatch):
    from objectives import evidence

    monkeypatch.setattr(evidence, "MEASURED", {"kappa_w": {"init": ("maximize", 0.41, 150, "lab", None)}})
    e = registry.get("kappa_w")
    assert e.hypothesis == "minimize"  # the thesis's direction stays, as a hypothesis
    assert e.measured["init"].direction == "maximize" and e.measured["init"].n == 150
    assert e.direction_for("init") == "maximize"
    assert e.direction_for("early") == "minimize"  # not measured: the hypothesis
    assert registry.get("confusion").measured == {}
