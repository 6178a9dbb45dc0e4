"""Paper 001 (Xie et al., overlooked structure of stochastic gradients): power laws and Gaussianity."""

from __future__ import annotations

from typing import Any

import numpy as np

from objectives import noise

from ..context import Context
from ..registry import Measurement, claim
from ._common import cnn, mean_over_seeds


def _history_tests(ctx: Context) -> list[Any]:
    if "p001" not in ctx.cache:
        out = []
        for s in range(ctx.seeds):
            ctx.progress(f"gradient history seed {s}")
            model = cnn(ctx, s, [8, 16, 32])
            hist = noise.gradient_history(model, noise.random_batches(ctx.data.train_x, ctx.data.train_y, 16,
                                                                      ctx.size(200, 1000), seed=s), seed=s)
            out.append(noise.gradient_history_tests(hist, k=ctx.size(200, 1000), max_vectors=ctx.size(300, 1000),
                                                    seed=s))
        ctx.cache["p001"] = out
    return ctx.cache["p001"]


@claim("001.dimension_wise_power_law", paper="001 Xie et al.", section="Sec. 3, Table 1",
       statement="dimension-wise gradients (all parameters at one step) follow a power law far more often than "
                 "iteration-wise ones (one parameter over the steps)",
       protocol="CNN-3 (8-16-32) at initialization; 200 minibatch gradients (batch 16; full: 1000) at fixed "
                "weights; KS power-law test on the top-K magnitudes of each vector (K = 200; full 1000); effect = "
                "dimension-wise minus iteration-wise power-law rate (percentage points), mean over seeds",
       expect="positive")
def dimension_wise_power_law(ctx: Context) -> Measurement:
    tests = _history_tests(ctx)
    diffs = [t.dimension.power_law_rate - t.iteration.power_law_rate for t in tests]

    def draw(ax):
        ax.bar([0, 1], [np.mean([t.dimension.power_law_rate for t in tests]),
                        np.mean([t.iteration.power_law_rate for t in tests])])
        ax.set_xticks([0, 1], ["dimension-wise", "iteration-wise"])
        ax.set_ylabel("power-law rate %")

    return mean_over_seeds(diffs, "power-law rate: dimension-wise - iteration-wise (points)", figure=draw)


@claim("001.iteration_wise_gaussian", paper="001 Xie et al.", section="Sec. 3, Table 1",
       statement="iteration-wise gradients (the SGN of one parameter) are Gaussian far more often than "
                 "dimension-wise ones",
       protocol="the histories of 001.dimension_wise_power_law; D'Agostino-Pearson normaltest on 100 whitened "
                "entries per vector; effect = iteration-wise minus dimension-wise Gaussian rate (points)",
       expect="positive")
def iteration_wise_gaussian(ctx: Context) -> Measurement:
    tests = _history_tests(ctx)
    diffs = [t.iteration.gaussian_rate - t.dimension.gaussian_rate for t in tests]

    def draw(ax):
        ax.bar([0, 1], [np.mean([t.dimension.gaussian_rate for t in tests]),
                        np.mean([t.iteration.gaussian_rate for t in tests])])
        ax.set_xticks([0, 1], ["dimension-wise", "iteration-wise"])
        ax.set_ylabel("Gaussian rate %")

    return mean_over_seeds(diffs, "Gaussian rate: iteration-wise - dimension-wise (points)", figure=draw)
