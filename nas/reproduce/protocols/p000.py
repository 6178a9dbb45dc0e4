"""Paper 000 (Roy & Roy, layer-dependent gradient noise): depth trends of the layer gradients."""

from __future__ import annotations

import math

from objectives import noise

from ..context import Context
from ..registry import Measurement, claim
from ._common import cnn, mean_over_seeds, trained_profiles


@claim("000.norms_fall_with_depth", paper="000 Roy & Roy", section="Table 1, Fig. 1",
       statement="the mean per-layer gradient norm falls with depth (Conv1 > ... > FC2)",
       protocol="CNN-4 (8-16-32-32 convs, FC 64), SGD momentum 0.9, lr 0.01, batch 64, 300 steps (full: 1000) per "
                "seed; Spearman rho of the layer's mean ||g_l|| over the steps against depth; mean rho over seeds",
       expect="negative")
def norms_fall_with_depth(ctx: Context) -> Measurement:
    runs = trained_profiles(ctx)
    rhos = [r["profile"].mean_trend.spearman if r["profile"].mean_trend else float("nan") for r in runs]

    def draw(ax):
        for r in runs:
            ax.semilogy(range(1, len(r["profile"].mean) + 1), r["profile"].mean, "o-", alpha=0.7)
        ax.set_xlabel("layer (depth)")
        ax.set_ylabel("mean ||g_l|| over the steps")

    return mean_over_seeds(rhos, "mean Spearman rho(depth, mean layer gradient norm)", figure=draw,
                           details={"layers": list(runs[0]["profile"].layers)})


@claim("000.cv_rises_with_depth", paper="000 Roy & Roy", section="Table 1",
       statement="the coefficient of variation of the layer gradient norm rises with depth",
       protocol="the same runs as 000.norms_fall_with_depth; Spearman rho of the layer's CV (std/mean of ||g_l|| "
                "over the steps) against depth; mean over seeds",
       expect="positive")
def cv_rises_with_depth(ctx: Context) -> Measurement:
    runs = trained_profiles(ctx)
    rhos = [r["profile"].cv_trend.spearman if r["profile"].cv_trend else float("nan") for r in runs]

    def draw(ax):
        for r in runs:
            ax.plot(range(1, len(r["profile"].cv) + 1), r["profile"].cv, "o-", alpha=0.7)
        ax.set_xlabel("layer (depth)")
        ax.set_ylabel("CV of ||g_l||")

    return mean_over_seeds(rhos, "mean Spearman rho(depth, CV of the layer gradient norm)", figure=draw)


@claim("000.early_layers_align_more", paper="000 Roy & Roy", section="Table 2, Sec. 4.5",
       statement="early layers' gradients align more across seeds than late layers' (cos Conv1 > cos FC2)",
       protocol="CNN-4 at initialization; per seed group (one per --seeds) 4 independently seeded copies (full: 8) "
                "evaluated on the same 4 minibatches of 64; per layer the mean pairwise cosine of the gradients; "
                "effect = cos(first layer) - cos(last layer), bootstrap over seed groups",
       expect="positive")
def early_layers_align_more(ctx: Context) -> Measurement:
    groups = ctx.seeds
    per_group = ctx.size(4, 8)
    diffs, layers = [], []
    for g in range(groups):
        x, y = ctx.batch(64 * 4, seed=100 + g)
        batches = [(x[i * 64:(i + 1) * 64], y[i * 64:(i + 1) * 64]) for i in range(4)]
        ctx.progress(f"alignment group {g}: {per_group} seeds")
        res = noise.cross_seed_alignment(lambda s, g=g: cnn(ctx, 1000 * (g + 1) + s), batches,
                                         seeds=per_group, num_bootstrap=200, seed=g)
        names = list(res)
        diffs.append(res[names[0]].mean_cosine - res[names[-1]].mean_cosine)
        layers.append({n: (r.mean_cosine, r.chance) for n, r in res.items()})

    def draw(ax):
        for lay in layers:
            ax.plot(range(1, len(lay) + 1), [v[0] for v in lay.values()], "o-", alpha=0.7)
        ax.plot(range(1, len(layers[0]) + 1), [v[1] for v in layers[0].values()], "k_", markersize=12,
                label="chance E|cos|")
        ax.set_xlabel("layer (depth)")
        ax.set_ylabel("mean cross-seed cosine")
        ax.legend(fontsize=7)

    return mean_over_seeds(diffs, "cos(first layer) - cos(last layer), mean over seed groups", figure=draw,
                           details={"per_group": layers})


@claim("000.early_noise_more_anisotropic", paper="000 Roy & Roy", section="Table 3",
       statement="early layers' gradient noise is more anisotropic (higher lambda1/lambda10) than late layers'",
       protocol="per seed, the trained CNN-4 of 000.norms_fall_with_depth; 64 minibatch gradients (batch 64) at "
                "fixed weights; per layer the covariance spectrum; effect = ln(lambda1/lambda10) of the first "
                "layer - that of the last layer",
       expect="positive")
def early_noise_more_anisotropic(ctx: Context) -> Measurement:
    runs = trained_profiles(ctx)
    diffs, ratios = [], []
    for s, r in enumerate(runs):
        hist = noise.gradient_history(r["model"], noise.random_batches(ctx.data.train_x, ctx.data.train_y, 64,
                                                                       ctx.size(64, 200), seed=s),
                                      max_weights_per_layer=2000, seed=s)
        spectra = noise.layer_spectra(hist, fit_k=None, compare_lognormal=False)
        names = list(spectra)
        ratios.append([spectra[n].ratio_10 for n in names])
        diffs.append(math.log(spectra[names[0]].ratio_10) - math.log(spectra[names[-1]].ratio_10))

    def draw(ax):
        for rr in ratios:
            ax.semilogy(range(1, len(rr) + 1), rr, "o-", alpha=0.7)
        ax.set_xlabel("layer (depth)")
        ax.set_ylabel("lambda1 / lambda10")

    return mean_over_seeds(diffs, "ln(lambda1/lambda10) first layer - last layer, mean over seeds", figure=draw)
