"""nas.lab.keys: a population table's proxy keys, their directions and kinds."""

from __future__ import annotations

from nas.lab import keys


def test_directions_kinds_and_keys():
    assert keys.direction("kappa_w") == "minimize"
    assert keys.direction("synflow@early") == "maximize"
    assert keys.direction("train_loss_last") == "minimize"
    assert keys.direction("train_loss_last@50") == "minimize"
    assert keys.direction("loss_drop@50") == "maximize"
    assert keys.direction(keys.COMBINED) == "minimize"
    assert keys.kind_of("kappa_w@early") == "thesis"
    assert keys.kind_of("synflow") == "peer"
    assert keys.kind_of("sgn_gaussianity") == "noise"
    assert keys.kind_of("train_loss_last@50") == "baseline"
    assert keys.kind_of("loss_init") == "derived"
    cols = ["index", "params", "params@early", "synflow", "synflow@early", "train_loss_last",
            "train_loss_last@50", "val_best_acc", "time_eval"]
    assert keys.proxy_keys(cols) == ["params", "synflow", "synflow@early", "train_loss_last", "train_loss_last@50"]


def test_long_metric_keys_follow_the_registry_order():
    cols = ["synflow@50", "kappa_w@50", "kappa_w", "loss_drop@50", "train_loss_last@20", "loss_curve@50"]
    assert keys.proxy_keys(cols) == ["kappa_w", "train_loss_last@20", "loss_drop@50", "kappa_w@50", "synflow@50"]
