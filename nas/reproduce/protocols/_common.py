"""Helpers shared by the protocols: the small CNNs, trainings of a config, the mean-over-seeds measurement,
and the trained CNN-4 runs that papers 000 and 002 both read."""

from __future__ import annotations

import math
from typing import Any

from objectives import noise

from ..context import Context, sgd_steps, small_cnn
from ..registry import Measurement, bootstrap_ci

CNN4 = [8, 16, 32, 32]


def cnn(ctx: Context, seed: int, convs: list[int] = CNN4):
    return small_cnn(convs, ctx.data.input_shape[0], ctx.data.num_classes, seed)


def mean_over_seeds(values: list[float], name: str, **kw: Any) -> Measurement:
    ok = [v for v in values if math.isfinite(v)]
    effect, lo, hi = bootstrap_ci(ok) if ok else (float("nan"),) * 3
    return Measurement(effect, lo, hi, len(ok), name, samples=[float(v) for v in values], **kw)


def trained_profiles(ctx: Context) -> list[dict[str, Any]]:
    """Per seed: a CNN-4 trained with paper 000's recipe, its per-layer norm profile and global std trend."""
    if "p000_train" not in ctx.cache:
        out = []
        steps = ctx.size(300, 1000)
        x0, _ = ctx.batch(64)
        for s in range(ctx.seeds):
            ctx.progress(f"CNN-4 seed {s}: {steps} SGD steps")
            model = cnn(ctx, s)
            tracker = noise.GradientStdTracker(model, order=noise.layer_order(model, x0))
            sgd_steps(model, ctx, steps, seed=s, after_backward=tracker.update)
            out.append({"profile": tracker.norm_profile(), "summary": tracker.summary(), "model": model,
                        "global_std": list(tracker.global_std)})
        ctx.cache["p000_train"] = out
    return ctx.cache["p000_train"]


def train_config(ctx: Context, config: dict[str, Any], seed: int, epochs: int) -> dict[str, Any]:
    from ...training import TrainSpec, train

    from search_spaces import get_space

    space = get_space("resnet_cifar", **get_space("resnet_cifar").cpu_bounds)
    spec = TrainSpec(space="resnet_cifar", config=space.validate(config), dataset=ctx.dataset, epochs=epochs,
                     bounds=space.bounds, data_dir=ctx.data_dir, seed=seed, data_seed=0, threads=None)
    return train(spec)


def chance_floor(ctx: Context) -> float:
    """Accuracy a compared network must reach for an accuracy comparison to mean anything: chance + 10 points."""
    return 1.0 / ctx.data.num_classes + 0.1


def final_acc(result: dict[str, Any]) -> float:
    return float(result["test_acc"][-1]) if result["test_acc"] and not result["diverged"] else 0.0
