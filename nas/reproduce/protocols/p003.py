"""Paper 003 (Wu et al., characteristics of SGN): Gaussianity and the Berry-Esseen distance against the batch size."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from objectives import noise

from ..context import Context, sgd_steps
from ..registry import Measurement, claim
from ._common import cnn, mean_over_seeds


def _batch_histories(ctx: Context) -> list[dict[int, Any]]:
    """Per seed: a CNN-3 trained 100 steps, then minibatch-gradient histories at batch 8 and 128."""
    if "p003" not in ctx.cache:
        out = []
        for s in range(ctx.seeds):
            model = cnn(ctx, s, [8, 16, 32])
            sgd_steps(model, ctx, 100, seed=s)
            hist = {}
            for b in (8, 128):
                ctx.progress(f"SGN histories seed {s}, batch {b}")
                hist[b] = noise.gradient_history(model, noise.random_batches(ctx.data.train_x, ctx.data.train_y, b,
                                                                             ctx.size(100, 200), seed=1000 * s + b),
                                                 max_weights_per_layer=ctx.size(200, 1000), seed=s)
            out.append(hist)
        ctx.cache["p003"] = out
    return ctx.cache["p003"]


@claim("003.gaussianity_rises_with_batch", paper="003 Wu et al.", section="Sec. 4, Figs. 3-6",
       statement="the share of weights whose stochastic-gradient noise is Gaussian rises with the batch size",
       protocol="CNN-3 trained 100 steps per seed; 100 minibatch gradients (full: 200) at batch 8 and at batch 128, "
                "fixed weights; Shapiro-Wilk per weight (200 sampled weights per layer); effect = Gaussian % at "
                "128 - at 8",
       expect="positive")
def gaussianity_rises_with_batch(ctx: Context) -> Measurement:
    hists = _batch_histories(ctx)
    pct = [{b: noise.sgn_gaussianity_profile(h[b]).percent for b in h} for h in hists]
    diffs = [p[128] - p[8] for p in pct]

    def draw(ax):
        for p in pct:
            ax.plot([8, 128], [p[8], p[128]], "o-", alpha=0.7)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.set_ylabel("Gaussian weights %")

    return mean_over_seeds(diffs, "Gaussian % at batch 128 - at batch 8 (points)", figure=draw,
                           details={"percent": [{str(k): v for k, v in p.items()} for p in pct]})


def _median_ks(hist: Any) -> float:
    """Median over weights of the KS distance between the standardized minibatch gradient and N(0, 1)."""
    ds = []
    for m in hist.layers.values():
        a = m.double().numpy()
        sd = a.std(axis=0, ddof=1)
        keep = sd > 0
        z = (a[:, keep] - a[:, keep].mean(axis=0)) / sd[keep]
        ds.extend(stats.kstest(z[:, j], "norm").statistic for j in range(z.shape[1]))
    return float(np.median(ds)) if ds else float("nan")


@claim("003.berry_esseen_shrinks_with_batch", paper="003 Wu et al.", section="Sec. 3, eqs. 13-21",
       statement="the distance of the minibatch gradient's distribution from a Gaussian (bounded by Berry-Esseen) "
                 "shrinks as the batch grows",
       protocol="the histories of 003.gaussianity_rises_with_batch; per weight the KS distance between its "
                "standardized minibatch gradients and N(0, 1); effect = median KS distance at batch 128 - at batch 8",
       expect="negative")
def berry_esseen_shrinks_with_batch(ctx: Context) -> Measurement:
    hists = _batch_histories(ctx)
    ks = [{b: _median_ks(h[b]) for b in h} for h in hists]
    diffs = [k[128] - k[8] for k in ks]

    def draw(ax):
        for k in ks:
            ax.plot([8, 128], [k[8], k[128]], "o-", alpha=0.7)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.set_ylabel("median KS distance to N(0,1)")

    return mean_over_seeds(diffs, "median KS distance at batch 128 - at batch 8", figure=draw)
