"""Full training of one candidate (nas/training/train.py): schedule, checkpoints, resume, divergence."""

from __future__ import annotations

import importlib
import json

import pytest
import torch

from nas.training import TrainSpec, train, warmup_cosine
from nas.training import summarize

# the module (the package's ``train`` attribute is the function of the same name)
train_mod = importlib.import_module("nas.training.train")

CFG = {"blocks": 1, "width": 8, "batch_size": 64, "lr": 0.05}


def test_warmup_cosine_schedule():
    f = warmup_cosine(total_steps=10, warmup_steps=2)
    assert [f(0), f(1)] == [0.5, 1.0]
    assert f(9) == pytest.approx(0.0, abs=1e-12)
    values = [f(s) for s in range(1, 10)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # non-increasing after warmup


def test_train_checkpoint_resume_after_interruption(tmp_path):
    ckpt = tmp_path / "checkpoints" / "trial_0.pt"
    spec = TrainSpec("resnet_cifar", CFG, "synthetic", epochs=2, checkpoint=str(ckpt), threads=1, trial=0)

    def stop_after_first_epoch(history):
        raise KeyboardInterrupt("simulated interruption")

    with pytest.raises(KeyboardInterrupt):
        train(spec, on_epoch=stop_after_first_epoch)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)  # only safe types inside
    assert state["epoch"] == 1 and len(state["history"]["test_acc"]) == 1
    assert {"model", "optimizer", "scheduler", "history"} <= set(state)
    assert not [p for p in ckpt.parent.iterdir() if p.name != ckpt.name]  # no temporary files left

    epochs_seen = []
    resumed = train(spec, on_epoch=lambda h: epochs_seen.append(len(h["test_acc"])))
    assert resumed["resumed_from"] == 1 and resumed["epochs_trained"] == 1 and epochs_seen == [2]
    assert resumed["finished"] and not resumed["diverged"]
    for key in ("train_loss", "test_loss", "test_acc", "epoch_time"):
        assert len(resumed[key]) == 2
    json.dumps(resumed)  # plain data

    straight = train(TrainSpec("resnet_cifar", CFG, "synthetic", epochs=2, threads=1))
    assert resumed["train_loss"] == pytest.approx(straight["train_loss"], rel=1e-4)
    assert resumed["test_acc"] == pytest.approx(straight["test_acc"], abs=2 / 256)

    again = train(spec)  # a finished checkpoint: nothing to train
    assert again["epochs_trained"] == 0 and again["test_acc"] == resumed["test_acc"]
    other = train(TrainSpec("resnet_cifar", CFG, "synthetic", epochs=1, checkpoint=str(ckpt), threads=1))
    assert other["resumed_from"] == 0 and other["epochs_trained"] == 1  # other epochs: starts over


def test_non_finite_loss_marks_trial_diverged(monkeypatch):
    calls = {"n": 0}
    real = train_mod.F.cross_entropy

    class FakeF:
        @staticmethod
        def cross_entropy(logits, y, **kw):
            loss = real(logits, y, **kw)
            if kw.get("reduction") == "sum":  # evaluation
                return loss
            calls["n"] += 1
            return loss * float("nan") if calls["n"] == 20 else loss

    monkeypatch.setattr(train_mod, "F", FakeF)
    h = train(TrainSpec("resnet_cifar", CFG, "synthetic", epochs=3, threads=1))
    steps = h["steps_per_epoch"]
    assert h["diverged"] and h["finished"]
    assert h["diverged_epoch"] == 1 + 19 // steps and h["diverged_step"] == 19 % steps + 1
    assert len(h["test_acc"]) == 19 // steps  # finished epochs only
    assert h["final_test_acc"] is not None
    v = summarize(h, "random")
    assert v["val_diverged"] and not v["val_converged"] and v["val_final_train_loss"] is None
    assert v["val_final_acc"] == h["final_test_acc"]
