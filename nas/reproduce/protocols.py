"""The registered protocols, one per claim (see ``python -m nas reproduce --help`` for the list).

Per-seed protocols measure one value per independently seeded network and bootstrap the mean over
seeds; population protocols (the thesis's claims about which networks train) measure a sample of
``resnet_cifar`` configs (the CPU bounds), each scored at initialization and trained, and bootstrap
over configs. Sizes are small with ``--quick`` (every claim on 2 CPU cores in minutes) and larger
otherwise. Papers: 000 Roy & Roy (layer-dependent gradient noise), 001 Xie et al. (overlooked
structure of stochastic gradients), 002 Yun (gradient autoscaled normalization), 003 Wu et al.
(characteristics of SGN), 004 Nelson's thesis (step-consistency and batch-dissonance).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy import stats

from objectives import noise

from .context import Context, sgd_steps, small_cnn
from .registry import Measurement, bootstrap_ci, claim

CNN4 = [8, 16, 32, 32]


def _cnn(ctx: Context, seed: int, convs: list[int] = CNN4):
    return small_cnn(convs, ctx.data.input_shape[0], ctx.data.num_classes, seed)


def _mean_over_seeds(values: list[float], name: str, **kw: Any) -> Measurement:
    ok = [v for v in values if math.isfinite(v)]
    effect, lo, hi = bootstrap_ci(ok) if ok else (float("nan"),) * 3
    return Measurement(effect, lo, hi, len(ok), name, samples=[float(v) for v in values], **kw)


# ------------------------------------------------------------------------------------ paper 000
def _trained_profiles(ctx: Context) -> list[dict[str, Any]]:
    """Per seed: a CNN-4 trained with paper 000's recipe, its per-layer norm profile and global std trend."""
    if "p000_train" not in ctx.cache:
        out = []
        steps = ctx.size(300, 1000)
        x0, _ = ctx.batch(64)
        for s in range(ctx.seeds):
            ctx.progress(f"CNN-4 seed {s}: {steps} SGD steps")
            model = _cnn(ctx, s)
            tracker = noise.GradientStdTracker(model, order=noise.layer_order(model, x0))
            sgd_steps(model, ctx, steps, seed=s, after_backward=tracker.update)
            out.append({"profile": tracker.norm_profile(), "summary": tracker.summary(), "model": model,
                        "global_std": list(tracker.global_std)})
        ctx.cache["p000_train"] = out
    return ctx.cache["p000_train"]


@claim("000.norms_fall_with_depth", paper="000 Roy & Roy", section="Table 1, Fig. 1",
       statement="the mean per-layer gradient norm falls with depth (Conv1 > ... > FC2)",
       protocol="CNN-4 (8-16-32-32 convs, FC 64), SGD momentum 0.9, lr 0.01, batch 64, 300 steps (full: 1000) per "
                "seed; Spearman rho of the layer's mean ||g_l|| over the steps against depth; mean rho over seeds",
       expect="negative")
def norms_fall_with_depth(ctx: Context) -> Measurement:
    runs = _trained_profiles(ctx)
    rhos = [r["profile"].mean_trend.spearman if r["profile"].mean_trend else float("nan") for r in runs]

    def draw(ax):
        for r in runs:
            ax.semilogy(range(1, len(r["profile"].mean) + 1), r["profile"].mean, "o-", alpha=0.7)
        ax.set_xlabel("layer (depth)")
        ax.set_ylabel("mean ||g_l|| over the steps")

    return _mean_over_seeds(rhos, "mean Spearman rho(depth, mean layer gradient norm)", figure=draw,
                            details={"layers": list(runs[0]["profile"].layers)})


@claim("000.cv_rises_with_depth", paper="000 Roy & Roy", section="Table 1",
       statement="the coefficient of variation of the layer gradient norm rises with depth",
       protocol="the same runs as 000.norms_fall_with_depth; Spearman rho of the layer's CV (std/mean of ||g_l|| "
                "over the steps) against depth; mean over seeds",
       expect="positive")
def cv_rises_with_depth(ctx: Context) -> Measurement:
    runs = _trained_profiles(ctx)
    rhos = [r["profile"].cv_trend.spearman if r["profile"].cv_trend else float("nan") for r in runs]

    def draw(ax):
        for r in runs:
            ax.plot(range(1, len(r["profile"].cv) + 1), r["profile"].cv, "o-", alpha=0.7)
        ax.set_xlabel("layer (depth)")
        ax.set_ylabel("CV of ||g_l||")

    return _mean_over_seeds(rhos, "mean Spearman rho(depth, CV of the layer gradient norm)", figure=draw)


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
        res = noise.cross_seed_alignment(lambda s, g=g: _cnn(ctx, 1000 * (g + 1) + s), batches,
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

    return _mean_over_seeds(diffs, "cos(first layer) - cos(last layer), mean over seed groups", figure=draw,
                            details={"per_group": layers})


@claim("000.early_noise_more_anisotropic", paper="000 Roy & Roy", section="Table 3",
       statement="early layers' gradient noise is more anisotropic (higher lambda1/lambda10) than late layers'",
       protocol="per seed, the trained CNN-4 of 000.norms_fall_with_depth; 64 minibatch gradients (batch 64) at "
                "fixed weights; per layer the covariance spectrum; effect = ln(lambda1/lambda10) of the first "
                "layer - that of the last layer",
       expect="positive")
def early_noise_more_anisotropic(ctx: Context) -> Measurement:
    runs = _trained_profiles(ctx)
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

    return _mean_over_seeds(diffs, "ln(lambda1/lambda10) first layer - last layer, mean over seeds", figure=draw)


# ------------------------------------------------------------------------------------ paper 001
def _history_tests(ctx: Context) -> list[Any]:
    if "p001" not in ctx.cache:
        out = []
        for s in range(ctx.seeds):
            ctx.progress(f"gradient history seed {s}")
            model = _cnn(ctx, s, [8, 16, 32])
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

    return _mean_over_seeds(diffs, "power-law rate: dimension-wise - iteration-wise (points)", figure=draw)


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

    return _mean_over_seeds(diffs, "Gaussian rate: iteration-wise - dimension-wise (points)", figure=draw)


# ------------------------------------------------------------------------------------ paper 002
@claim("002.global_std_decreases", paper="002 Yun", section="Fig. 2",
       statement="the global gradient standard deviation s_t decreases during training",
       protocol="the trained CNN-4 runs of 000.norms_fall_with_depth; s_t = std of the concatenated weight "
                "gradients at every step; Spearman rho of s_t against the step, mean over seeds",
       expect="negative")
def global_std_decreases(ctx: Context) -> Measurement:
    runs = _trained_profiles(ctx)
    rhos = [r["summary"]["global_std_spearman"] for r in runs]

    def draw(ax):
        for r in runs:
            ax.semilogy(r["global_std"], alpha=0.7)
        ax.set_xlabel("step")
        ax.set_ylabel("global gradient std s_t")

    return _mean_over_seeds(rhos, "mean Spearman rho(step, s_t)", figure=draw)


def _train_config(ctx: Context, config: dict[str, Any], seed: int, epochs: int) -> dict[str, Any]:
    from ..training import TrainSpec, train

    from search_spaces import get_space

    space = get_space("resnet_cifar", **get_space("resnet_cifar").cpu_bounds)
    spec = TrainSpec(space="resnet_cifar", config=space.validate(config), dataset=ctx.dataset, epochs=epochs,
                     bounds=space.bounds, data_dir=ctx.data_dir, seed=seed, data_seed=0, threads=None)
    return train(spec)


@claim("002.gan_not_worse", paper="002 Yun", section="Sec. 5, Table 1",
       statement="gradient autoscaled normalization (GAN) trains at least as well as plain AdamW, gradient "
                 "centralization and z-score normalization",
       protocol="resnet_cifar (1 block per stage, width 8, BN, batch 64) trained 2 epochs (full: 5) with "
                "grad_transform none / gan / gc / zscore, same seed each, with the paper's optimizer (AdamW, lr 1e-3, "
                "weight decay 5e-5) under gradnas's warmup + cosine schedule (the paper: step decay, 200 epochs); "
                "effect = test accuracy of GAN minus the best of the other three, per seed; claim holds if not below "
                "-1 point (non-inferiority). Full also trains gradnas's SGD recipe (lr 0.05) and reports it beside",
       expect="positive", threshold=-0.01)
def gan_not_worse(ctx: Context) -> Measurement:
    epochs = ctx.size(2, 5)
    base = {"blocks": 1, "width": 8, "skip": True, "norm": "bn", "activation": "relu", "batch_size": 64}
    recipes = {"adamw": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 5e-5}}
    if not ctx.quick:
        recipes["sgd"] = {"optimizer": "sgd", "lr": 0.05}
    transforms = ("none", "gan", "gc", "zscore")
    accs: dict[str, dict[str, list[float]]] = {r: {t: [] for t in transforms} for r in recipes}
    for s in range(ctx.seeds):
        for rname, recipe in recipes.items():
            for t in transforms:
                ctx.progress(f"GAN comparison seed {s}: {rname} + {t}")
                r = _train_config(ctx, {**base, **recipe, "grad_transform": t}, seed=s, epochs=epochs)
                accs[rname][t].append(float(r["test_acc"][-1]) if r["test_acc"] and not r["diverged"] else 0.0)

    def gan_margin(a: dict[str, list[float]]) -> list[float]:
        return [a["gan"][i] - max(a[t][i] for t in ("none", "gc", "zscore")) for i in range(len(a["gan"]))]

    diffs = gan_margin(accs["adamw"])

    def draw(ax):
        labels, data = [], []
        for rname, a in accs.items():
            for t in transforms:
                labels.append(f"{rname}\n{t}")
                data.append(a[t])
        ax.boxplot(data)
        ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=6)
        ax.set_ylabel(f"test accuracy after {epochs} epoch(s)")

    details: dict[str, Any] = {"accuracy": accs}
    if "sgd" in accs:
        details["sgd_margin_mean"] = float(np.mean(gan_margin(accs["sgd"])))
    return _mean_over_seeds(diffs, "test accuracy: GAN - best of (AdamW, GC, z-score), mean over seeds",
                            figure=draw, details=details)


# ------------------------------------------------------------------------------------ paper 003
def _batch_histories(ctx: Context) -> list[dict[int, Any]]:
    """Per seed: a CNN-3 trained 100 steps, then minibatch-gradient histories at batch 8 and 128."""
    if "p003" not in ctx.cache:
        out = []
        for s in range(ctx.seeds):
            model = _cnn(ctx, s, [8, 16, 32])
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

    return _mean_over_seeds(diffs, "Gaussian % at batch 128 - at batch 8 (points)", figure=draw,
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

    return _mean_over_seeds(diffs, "median KS distance at batch 128 - at batch 8", figure=draw)


# ------------------------------------------------------------------------------------ thesis (004)
def _deep_mlp(ctx: Context, activation: str, init: str, depth: int, seed: int, lr: float = 0.01) -> dict[str, Any]:
    from ..training import TrainSpec, train

    from search_spaces import get_space

    space = get_space("mlp_looks_linear")
    config = space.validate({**space.default_config(), "depth": depth, "width": 64, "activation": activation,
                             "init": init, "norm": "none", "batch_size": 64, "lr": lr})
    spec = TrainSpec(space="mlp_looks_linear", config=config, dataset=ctx.dataset, epochs=ctx.size(1, 5),
                     bounds=space.bounds, data_dir=ctx.data_dir, seed=seed, data_seed=0)
    return train(spec)


def _final_acc(result: dict[str, Any]) -> float:
    return float(result["test_acc"][-1]) if result["test_acc"] and not result["diverged"] else 0.0


@claim("004.crelu_looks_linear_trains_deep", paper="004 Nelson thesis", section="Ch. 3 (Defs. 3.8-3.9), Sec. 4",
       statement="deep MLPs with CReLU and looks-linear initialization train where ReLU MLPs of the same depth fail",
       protocol="mlp_looks_linear, depth 50 (full: 50, 100 and 200), width 64, no normalization, SGD batch 64, "
                "each method at its best of lr 0.001, 0.003, 0.01 (full: also 0.03) per depth and seed (a looks-linear "
                "net is a deep linear map at init and diverges at lr 0.01 where ReLU does not), 1 epoch (full: 5); "
                "effect = best test accuracy CReLU+looks-linear - best ReLU+orthogonal, same seed",
       expect="positive")
def crelu_looks_linear_trains_deep(ctx: Context) -> Measurement:
    depths = [50] if ctx.quick else [50, 100, 200]
    lrs = [0.001, 0.003, 0.01] if ctx.quick else [0.001, 0.003, 0.01, 0.03]
    diffs, rows = [], []
    for depth in depths:
        for s in range(ctx.seeds):
            best = {}
            for name, activation, init in (("ll", "crelu", "looks_linear"), ("relu", "relu", "orthogonal")):
                accs = {}
                for lr in lrs:
                    ctx.progress(f"depth {depth} seed {s}: {activation} lr {lr}")
                    accs[lr] = _final_acc(_deep_mlp(ctx, activation, init, depth, s, lr))
                best[name] = max(accs.values())
                best[name + "_lr"] = max(accs, key=accs.get)
            diffs.append(best["ll"] - best["relu"])
            rows.append((depth, best["ll"], best["relu"], best["ll_lr"], best["relu_lr"]))

    def draw(ax):
        for depth in depths:
            pts = [r for r in rows if r[0] == depth]
            ax.scatter([r[2] for r in pts], [r[1] for r in pts], label=f"depth {depth}")
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set_xlabel("ReLU + orthogonal: test accuracy")
        ax.set_ylabel("CReLU + looks-linear: test accuracy")
        ax.legend(fontsize=7)

    per_depth = {str(d): float(np.mean([r[1] - r[2] for r in rows if r[0] == d])) for d in depths}
    return _mean_over_seeds(diffs, "test accuracy: CReLU+LL - ReLU, mean over seeds and depths", figure=draw,
                            details={"rows": rows, "mean_by_depth": per_depth})


def _population(ctx: Context) -> list[dict[str, Any]]:
    """``ctx.population`` resnet_cifar configs (CPU bounds), each scored at init (rank_input, confusion,
    diversity, kappa_x), through 50 early steps (train_kappa_w) and trained 2 epochs (full: 3)."""
    if "population" in ctx.cache:
        return ctx.cache["population"]
    import optuna

    from ..evaluate import TrialFailed, TrialSpec, evaluate
    from ..training import TrainSpec, train

    from search_spaces import ConfigError, get_space

    import json

    space = get_space("resnet_cifar", **get_space("resnet_cifar").cpu_bounds)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    epochs = ctx.size(2, 3)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    saved = None if ctx.out_dir is None else ctx.out_dir / f"population-{ctx.dataset}-{epochs}ep.jsonl"
    done = [json.loads(line) for line in saved.read_text().splitlines()] if saved and saved.exists() else []
    rows: list[dict[str, Any]] = []
    while len(rows) < ctx.population:
        trial = study.ask()
        try:
            config = space.sample(trial)
        except ConfigError:
            continue
        i = len(rows)
        if i < len(done) and done[i]["config"] == config:  # measured by an interrupted earlier run
            rows.append(done[i])
            continue
        ctx.progress(f"population config {i + 1}/{ctx.population}")
        row: dict[str, Any] = {"config": config}
        try:
            v = evaluate(TrialSpec(space="resnet_cifar", config=config, dataset=ctx.dataset, bounds=space.bounds,
                                   data_dir=ctx.data_dir, metrics=["rank_input", "confusion", "diversity", "kappa_x"],
                                   early_steps=50, probe_size=64, seed=i, metric_options={"group_size": 8}))
            row.update({k: v.get(k) for k in ("rank_input", "confusion", "diversity", "kappa_x", "train_kappa_w")})
        except TrialFailed as exc:  # diverged in the early steps: it does not converge either
            row["eval_error"] = str(exc)
        r = train(TrainSpec(space="resnet_cifar", config=config, dataset=ctx.dataset, epochs=epochs,
                            bounds=space.bounds, data_dir=ctx.data_dir, seed=i, data_seed=0))
        loss = r["train_loss"][-1] if r["train_loss"] else float("inf")
        row["converged"] = bool(not r["diverged"] and loss is not None and math.isfinite(loss)
                                and loss < 0.5 * math.log(ctx.data.num_classes))
        row["acc"] = float(r["test_acc"][-1]) if r["test_acc"] and not r["diverged"] else 0.0
        row = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        rows.append(row)
        if saved is not None:
            with saved.open("a") as f:
                f.write(json.dumps(row, default=str) + "\n")
    ctx.cache["population"] = rows
    return rows


def _finite(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    return [r for r in rows if all(isinstance(r.get(k), (int, float)) and math.isfinite(r[k]) for k in keys)]


@claim("004.high_rank_input_fails", paper="004 Nelson thesis", section="Sec. 4.1 (relative gradient rank)",
       statement="networks whose input-gradient relative rank at initialization exceeds 0.15 mostly fail to converge",
       protocol="population: resnet_cifar configs (CPU bounds) scored at init and trained 2 epochs (full: 3); "
                "converged = final train loss < 0.5 ln(classes); effect = convergence rate with rank_input <= 0.15 "
                "minus with rank_input > 0.15, bootstrap over configs",
       expect="positive")
def high_rank_input_fails(ctx: Context) -> Measurement:
    rows = _finite(_population(ctx), "rank_input")
    low = [r["converged"] for r in rows if r["rank_input"] <= 0.15]
    high = [r["converged"] for r in rows if r["rank_input"] > 0.15]
    if not low or not high:
        return Measurement(float("nan"), float("nan"), float("nan"), len(rows), "convergence rate low - high rank",
                           note=f"{len(high)} config(s) above 0.15 and {len(low)} at or below: no contrast")
    x = np.array([r["rank_input"] > 0.15 for r in rows], float)
    y = np.array([r["converged"] for r in rows], float)

    def diff(xs, ys):
        lo_, hi_ = ys[xs == 0], ys[xs == 1]
        return float(lo_.mean() - hi_.mean()) if len(lo_) and len(hi_) else float("nan")

    effect, lo, hi = bootstrap_ci((x, y), diff, paired=True)

    def draw(ax):
        ax.scatter([r["rank_input"] for r in rows], [r["acc"] for r in rows],
                   c=["tab:green" if r["converged"] else "tab:red" for r in rows])
        ax.axvline(0.15, color="k", ls="--", lw=0.8)
        ax.set_xlabel("rank_input at init")
        ax.set_ylabel("test accuracy (green: converged)")

    return Measurement(effect, lo, hi, len(rows), "convergence rate (rank_input <= 0.15) - (> 0.15)", figure=draw,
                       details={"above": len(high), "below": len(low), "converged_above": int(sum(high)),
                                "converged_below": int(sum(low))})


def _tau_among_converging(ctx: Context, key: str) -> Measurement:
    rows = [r for r in _finite(_population(ctx), key) if r["converged"]]
    x = [r[key] for r in rows]
    y = [r["acc"] for r in rows]
    effect, lo, hi = bootstrap_ci((x, y), lambda a, b: stats.kendalltau(a, b).statistic, paired=True)

    def draw(ax):
        ax.scatter(x, y)
        ax.set_xscale("symlog")
        ax.set_xlabel(f"{key} at init")
        ax.set_ylabel("test accuracy (converging configs)")

    return Measurement(effect, lo, hi, len(rows), f"Kendall tau({key} at init, accuracy) among converging configs",
                       figure=draw)


@claim("004.low_confusion_trains_faster", paper="004 Nelson thesis", section="Sec. 4.1 (confusion, Def. 3.11)",
       statement="among converging networks, low gradient confusion at initialization goes with faster training",
       protocol="population (see 004.high_rank_input_fails), converged configs only; effect = Kendall tau between "
                "confusion at init and test accuracy after the short training, bootstrap over configs",
       expect="negative")
def low_confusion_trains_faster(ctx: Context) -> Measurement:
    return _tau_among_converging(ctx, "confusion")


@claim("004.low_diversity_trains_faster", paper="004 Nelson thesis", section="Sec. 4.1 (diversity, Def. 3.12)",
       statement="among converging networks, low gradient diversity at initialization goes with faster training",
       protocol="population, converged configs only; effect = Kendall tau between diversity at init and test "
                "accuracy, bootstrap over configs",
       expect="negative")
def low_diversity_trains_faster(ctx: Context) -> Measurement:
    return _tau_among_converging(ctx, "diversity")


@claim("004.high_kappa_w_fails", paper="004 Nelson thesis", section="Sec. 4.1 (step-consistency, Defs. 2.5-2.7)",
       statement="very high step-consistency kappa_W during training goes with non-convergence",
       protocol="population; kappa_W measured during the 50 early steps (median, train_kappa_w); effect = AUC of "
                "kappa_W for telling non-converging from converging configs, minus 0.5 (positive: high kappa_W "
                "marks the failures), bootstrap over configs",
       expect="positive")
def high_kappa_w_fails(ctx: Context) -> Measurement:
    rows = _finite(_population(ctx), "train_kappa_w")
    x = np.array([r["train_kappa_w"] for r in rows], float)
    y = np.array([not r["converged"] for r in rows], float)

    def auc(xs, ys):
        pos, neg = xs[ys == 1], xs[ys == 0]
        if not len(pos) or not len(neg):
            return float("nan")
        return float(stats.mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg)) - 0.5)

    effect, lo, hi = bootstrap_ci((x, y), auc, paired=True)

    def draw(ax):
        ax.scatter(x, [r["acc"] for r in rows], c=["tab:green" if r["converged"] else "tab:red" for r in rows])
        ax.set_xscale("log")
        ax.set_xlabel("kappa_W during the early steps")
        ax.set_ylabel("test accuracy (green: converged)")

    return Measurement(effect, lo, hi, len(rows), "AUC(kappa_W -> non-convergence) - 0.5", figure=draw,
                       details={"failed": int(y.sum())})


@claim("004.batch_dissonance_rises_with_batch", paper="004 Nelson thesis", section="Sec. 3.2 (Thm. 3.2 and after)",
       statement="the cost of batch-dissonance grows with the batch size: kappa_X of a network rises with the batch",
       protocol="per seed, resnet_cifar ResNet-8 (width 8, BN) at init; kappa_X on probe batches of 16, 64 and 256 "
                "examples; effect = Spearman rho(batch size, kappa_X), mean over seeds",
       expect="positive")
def batch_dissonance_rises_with_batch(ctx: Context) -> Measurement:
    import objectives

    from search_spaces import get_space

    space = get_space("resnet_cifar")
    config = space.validate({**space.default_config(), "blocks": 1, "width": 8})
    sizes = [16, 64, 256]
    rhos, curves = [], []
    for s in range(ctx.seeds):
        model = space.build(config, ctx.data.num_classes, ctx.data.input_shape, seed=s)
        vals = []
        for b in sizes:
            x, y = ctx.batch(b, seed=10 * s + b)
            vals.append(float(objectives.score(model, x, y, metrics=["kappa_x"], seed=s)["kappa_x"]))
        curves.append(vals)
        rhos.append(float(stats.spearmanr(sizes, vals).statistic) if np.ptp(vals) > 0 else 0.0)

    def draw(ax):
        for c in curves:
            ax.plot(sizes, c, "o-", alpha=0.7)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.set_ylabel("kappa_X at init")

    return _mean_over_seeds(rhos, "mean Spearman rho(batch size, kappa_X)", figure=draw, details={"kappa_x": curves})
