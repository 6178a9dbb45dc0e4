"""The thesis (004, Nelson: step-consistency and batch-dissonance): deep CReLU nets and the population claims."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from ..context import Context
from ..registry import Measurement, bootstrap_ci, claim
from ._common import chance_floor, final_acc, mean_over_seeds


def _deep_mlp(ctx: Context, activation: str, init: str, depth: int, seed: int, lr: float = 0.01) -> dict[str, Any]:
    from ...training import TrainSpec, train

    from search_spaces import get_space

    space = get_space("mlp_looks_linear")
    config = space.validate({**space.default_config(), "depth": depth, "width": 64, "activation": activation,
                             "init": init, "norm": "none", "batch_size": 64, "lr": lr})
    spec = TrainSpec(space="mlp_looks_linear", config=config, dataset=ctx.dataset, epochs=ctx.size(1, 5),
                     bounds=space.bounds, data_dir=ctx.data_dir, seed=seed, data_seed=0)
    return train(spec)


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
                    accs[lr] = final_acc(_deep_mlp(ctx, activation, init, depth, s, lr))
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
    floor = chance_floor(ctx)
    best = max(max(r[1], r[2]) for r in rows)
    why = (f"neither network trained above chance + 10 points (best accuracy {best:.3f} < {floor:.3f})"
           if best < floor else "")
    return mean_over_seeds(diffs, "test accuracy at each method's best lr: CReLU+LL - ReLU, mean over seeds and depths",
                           figure=draw, details={"rows": rows, "mean_by_depth": per_depth}, inconclusive_because=why)


def _population(ctx: Context) -> list[dict[str, Any]]:
    """``ctx.population`` resnet_cifar configs (CPU bounds; the lab's seeded sampling,
    :func:`nas.lab.population.sample_configs`), each scored at init (rank_input, confusion, diversity,
    kappa_x), through 50 early steps (train_kappa_w) and trained 2 epochs (full: 3; the lab's training
    summary, :func:`nas.lab.population.train_summary`: converged = the validation's convergence rule)."""
    if "population" in ctx.cache:
        return ctx.cache["population"]
    import json

    from ...evaluate import TrialFailed, TrialSpec, evaluate
    from ...lab.population import sample_configs, train_summary
    from ...training import TrainSpec

    from search_spaces import get_space

    space = get_space("resnet_cifar", **get_space("resnet_cifar").cpu_bounds)
    epochs = ctx.size(2, 3)
    saved = None if ctx.out_dir is None else ctx.out_dir / f"population-{ctx.dataset}-{epochs}ep.jsonl"
    done = [json.loads(line) for line in saved.read_text().splitlines()] if saved and saved.exists() else []
    rows: list[dict[str, Any]] = []
    for i, config in enumerate(sample_configs(space, ctx.population, seed=0)):
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
        except Exception as exc:  # noqa: BLE001 - a metric's numerics failed on this config (e.g. eigh did not
            # converge): its values stay undefined (the claims skip them), the config is still trained
            row["eval_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        s = train_summary(TrainSpec(space="resnet_cifar", config=config, dataset=ctx.dataset, epochs=epochs,
                                    bounds=space.bounds, data_dir=ctx.data_dir, seed=i, data_seed=0))
        row["converged"] = bool(s["val_converged"])
        row["acc"] = float(s["val_final_acc"]) if s["val_final_acc"] is not None and not s["val_diverged"] else 0.0
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

    return mean_over_seeds(rhos, "mean Spearman rho(batch size, kappa_X)", figure=draw, details={"kappa_x": curves})
