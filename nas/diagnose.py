"""``python -m nas diagnose``: why does a candidate train badly? Gradient-noise diagnostics of one net.

Measures, on one candidate (built from a config and a seed) at initialization and over ``steps``
training steps (the optimizer of :func:`nas.training.make_optimizer`: Nesterov SGD, as in the search's
early steps and in validation), the gradient-noise statistics of :mod:`objectives.noise` (papers
000-003):

* per-layer gradient norm profile over the training steps, its depth trend, the global gradient
  std s_t (002) — from :class:`objectives.noise.GradientStdTracker`;
* cross-seed directional alignment per layer at init, with bootstrap CI and chance level (000);
* covariance spectrum of the minibatch-gradient history (whole model) and its power-law fit (001),
  at init and after the steps;
* per-layer Shapiro-Wilk Gaussianity of the stochastic gradient noise, at init and after (003).

Writes ``summary.json`` and four PNGs (norm profile, alignment bars, spectrum on log-log axes with the
fitted line, Gaussianity per layer) to the output folder, and prints a table.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from objectives import noise
from search_spaces import get_space

from .data import augment_batch, load_dataset, resolve_loss
from .training import jsonable, make_optimizer

__all__ = ["DiagnoseOptions", "diagnose", "format_table"]


@dataclasses.dataclass
class DiagnoseOptions:
    """Settings of one diagnosis (see ``python -m nas diagnose --help``)."""

    space: str
    config: dict[str, Any]
    dataset: str
    out_dir: Path
    data_dir: str = "data"
    bounds: dict[str, Any] = dataclasses.field(default_factory=dict)
    steps: int = 50
    seed: int = 0
    seeds: int = 4  # independently initialized copies for the alignment
    history: int = 32  # minibatch gradients at fixed weights for spectrum and Gaussianity
    history_batch: int | None = None  # default: the config's batch size, at most 128
    max_weights: int = 256  # weights per layer kept in the history (Gaussianity, spectrum)


def random_batches(data, batch_size: int, num_batches: int, seed: int):
    """``num_batches`` minibatches of ``batch_size`` train examples, each drawn without replacement and
    independently (:func:`objectives.noise.random_batches`' draws), read through ``data.batches`` so a
    streamed dataset works too."""
    n = data.train_size
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be in 1..{n}, got {batch_size}")
    gen = torch.Generator().manual_seed(int(seed))
    return data.batches("train", [torch.randperm(n, generator=gen)[:batch_size] for _ in range(int(num_batches))])


def _history(model, data, batch: int, t: int, opts: DiagnoseOptions, salt: int) -> noise.GradientHistory:
    batches = random_batches(data, batch, t, seed=opts.seed + salt)
    return noise.gradient_history(model, batches, loss_fn=resolve_loss(data.loss),
                                  max_weights_per_layer=opts.max_weights, seed=opts.seed)


def _spectrum(history: noise.GradientHistory) -> noise.Spectrum | None:
    try:
        return noise.covariance_spectrum(history.matrix(), fit_k=min(1000, history.num_batches))
    except ValueError:
        return None


def diagnose(opts: DiagnoseOptions) -> dict[str, Any]:
    """Run the diagnosis, write ``summary.json`` and the plots; return the summary dict."""
    data = load_dataset(opts.dataset, opts.data_dir, seed=opts.seed)
    space = get_space(opts.space, **opts.bounds)
    config = space.validate(opts.config)

    def make_model(seed: int):
        return space.build(config, data.num_classes, data.input_shape, seed=seed)

    model = make_model(opts.seed)
    batch = int(opts.history_batch or min(int(config.get("batch_size", 64)), 128))
    batch = min(batch, data.train_size)
    loss_fn = resolve_loss(data.loss)
    hist0 = _history(model, data, batch, opts.history, opts, salt=1)
    shared = list(random_batches(data, min(batch, 64), 2, seed=opts.seed + 2))
    align = noise.cross_seed_alignment(make_model, shared, loss_fn, seeds=opts.seeds, num_bootstrap=500, seed=opts.seed)
    gauss0 = noise.sgn_gaussianity_profile(hist0, batch_size=batch)
    spec0 = _spectrum(hist0)

    # training with the recipe's optimizer (Nesterov SGD, the config's settings and gradient transform,
    # as the search's early steps and validation train), std tracked per step
    order = [n for n in noise.layer_order(model, data.take("train", [0, 1])[0]) if n in hist0.layers]
    tracker = noise.GradientStdTracker(model, order=order)
    opt = make_optimizer(model, config)
    gen = torch.Generator().manual_seed(opts.seed + 3)
    bs = min(int(config.get("batch_size", 64)), data.train_size)
    losses: list[float] = []
    model.train()
    steps = (torch.randperm(data.train_size, generator=gen)[:bs] for _ in range(opts.steps))
    for x, y in data.batches("train", steps):
        x = augment_batch(x, data.augment, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        if not torch.isfinite(loss):
            break  # reported: a diverging candidate is a diagnosis, not a crash
        loss.backward()
        tracker.update()
        opt.step()
        losses.append(loss.detach().item())
    diverged = len(losses) < opts.steps
    profile = tracker.norm_profile() if len(losses) >= 1 else None
    hist1 = None if diverged else _history(model, data, batch, opts.history, opts, salt=4)
    gauss1 = noise.sgn_gaussianity_profile(hist1, batch_size=batch) if hist1 is not None else None
    spec1 = _spectrum(hist1) if hist1 is not None else None

    layers = order
    summary: dict[str, Any] = {
        "space": opts.space, "config": config, "dataset": data.name, "seed": opts.seed, "steps": opts.steps,
        "steps_done": len(losses), "diverged": diverged, "loss_curve": losses,
        "history": {"batches": opts.history, "batch_size": batch, "max_weights_per_layer": opts.max_weights},
        "layers": [],
        "norm_depth_trend": dataclasses.asdict(profile.mean_trend) if profile and profile.mean_trend else None,
        "cv_depth_trend": dataclasses.asdict(profile.cv_trend) if profile and profile.cv_trend else None,
        "global_std": tracker.summary() if losses else None,
        "spectrum_init": spec0.summary() if spec0 else None,
        "spectrum_after": spec1.summary() if spec1 else None,
        "gaussianity_init": {"percent": gauss0.percent, "dead": gauss0.dead, "tested": gauss0.tested,
                             "samples": gauss0.num_samples},
        "gaussianity_after": ({"percent": gauss1.percent, "dead": gauss1.dead, "tested": gauss1.tested,
                               "samples": gauss1.num_samples} if gauss1 else None),
    }
    for i, n in enumerate(layers):
        a = align.get(n)
        row = {
            "layer": n, "size": hist0.sizes[n],
            "norm_init": float(np.mean(hist0.norms[n])),
            "norm_mean": float(profile.mean[i]) if profile else None,
            "norm_cv": float(profile.cv[i]) if profile else None,
            "early_late": float(profile.ratio[i]) if profile else None,
            "align_cos": a.mean_cosine if a else None, "align_ci": [a.ci_low, a.ci_high] if a else None,
            "align_abs": a.mean_abs_cosine if a else None, "chance": a.chance if a else None,
            "gauss_init": gauss0.layers[n].percent if n in gauss0.layers else None,
            "gauss_after": gauss1.layers[n].percent if gauss1 and n in gauss1.layers else None,
            "dead_init": gauss0.layers[n].dead if n in gauss0.layers else None,
        }
        summary["layers"].append(row)
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    summary["plots"] = _plots(opts.out_dir, summary, spec0, spec1)
    tmp = opts.out_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(jsonable(summary), indent=1))
    tmp.replace(opts.out_dir / "summary.json")
    return summary


def _plots(out: Path, s: dict[str, Any], spec0, spec1) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = s["layers"]
    x = np.arange(len(rows))
    labels = [r["layer"].removesuffix(".weight") for r in rows]
    names = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        names.append(name)

    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(rows)), 4))
    ax.semilogy(x, [r["norm_init"] for r in rows], "o-", label="at init (mean over minibatches)")
    if rows and rows[0]["norm_mean"] is not None:
        ax.semilogy(x, [r["norm_mean"] for r in rows], "s-", label=f"over {s['steps_done']} training steps")
    ax.set_xticks(x, labels, rotation=90, fontsize=7)
    ax.set_ylabel("gradient norm ||G_l||")
    ax.set_title("per-layer gradient norm profile (paper 000)")
    ax.legend()
    save(fig, "norm_profile.png")

    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(rows)), 4))
    cos = np.array([r["align_cos"] if r["align_cos"] is not None else np.nan for r in rows])
    ci = np.array([r["align_ci"] if r["align_ci"] else [np.nan, np.nan] for r in rows]).reshape(-1, 2)
    err = np.abs(np.stack([cos - ci[:, 0], ci[:, 1] - cos]))
    ax.bar(x, cos, yerr=err, capsize=2, label="mean pairwise cosine across seeds (95 % CI)")
    ax.plot(x, [r["chance"] or np.nan for r in rows], "k_", markersize=12, label="chance E|cos|")
    ax.set_xticks(x, labels, rotation=90, fontsize=7)
    ax.set_title("cross-seed gradient alignment at init (paper 000)")
    ax.legend(fontsize=8)
    save(fig, "alignment.png")

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for spec, label in ((spec0, "init"), (spec1, "after steps")):
        if spec is None:
            continue
        ev = spec.eigenvalues
        k = np.arange(1, ev.size + 1)
        (pts,) = ax.loglog(k, ev, ".", label=f"{label}: eigenvalues")
        pl = spec.power_law
        if pl is not None and math.isfinite(pl.s):
            kk = np.arange(1, pl.k + 1)
            ax.loglog(kk, pl.x_min * (kk / pl.k) ** (-pl.s), "-", color=pts.get_color(),
                      label=f"{label}: fit s={pl.s:.2f}, KS={pl.ks_distance:.3f} (crit {pl.ks_critical:.3f})")
    ax.set_xlabel("rank k")
    ax.set_ylabel("eigenvalue of the gradient covariance")
    ax.set_title("minibatch-gradient covariance spectrum (paper 001)")
    ax.legend(fontsize=7)
    save(fig, "spectrum.png")

    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(rows)), 4))
    w = 0.4
    ax.bar(x - w / 2, [r["gauss_init"] if r["gauss_init"] is not None else np.nan for r in rows], w, label="at init")
    if any(r["gauss_after"] is not None for r in rows):
        ax.bar(x + w / 2, [r["gauss_after"] if r["gauss_after"] is not None else np.nan for r in rows], w,
               label="after steps")
    ax.axhline(95, color="k", lw=0.8, ls="--", label="ceiling of a Gaussian layer (alpha 0.05)")
    ax.set_xticks(x, labels, rotation=90, fontsize=7)
    ax.set_ylabel("% of weights with Gaussian SGN")
    ax.set_title(f"Shapiro-Wilk Gaussianity, batch {s['history']['batch_size']}, "
                 f"{s['history']['batches']} samples (paper 003)")
    ax.legend(fontsize=8)
    save(fig, "gaussianity.png")
    return names


#: The source papers the diagnostics test, named where the table cites them.
PAPERS = {
    "000": "paper 000, Roy & Roy, Layer-Dependent Structure in Gradient Noise of Small ConvNets",
    "001": "paper 001, Xie et al., On the Overlooked Structure of Stochastic Gradients",
    "002": "paper 002, Gradient Autoscaled Normalization",
    "003": "paper 003, Wu et al., Revisiting the Characteristics of Stochastic Gradient Noise and Dynamics",
}

#: What each column of :func:`format_table` means (printed under the table).
COLUMN_LEGEND = [
    "columns: size = weights in the layer; norm@0 = mean minibatch-gradient norm ||g_l|| at init; "
    "norm = its mean over the training steps;",
    "  cv = coefficient of variation (std / mean) of ||g_l|| over the steps (paper 000 Table 1: rises with depth);",
    "  cos(seeds) = mean cosine between this layer's gradients at init of differently seeded nets, [95% bootstrap CI];",
    "  chance = E|cos| of two random directions of this size (the level of unrelated gradients; paper 000 Table 2);",
    "  gauss%0 / gauss% = percent of the layer's sampled weights whose gradient noise passes the Shapiro-Wilk test "
    "at init / after the steps (paper 003).",
]


def format_table(s: dict[str, Any]) -> str:
    """The terminal report: one row per layer, then the whole-model figures."""
    def f(v: Any, spec: str = ".3g") -> str:
        return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)

    head = f"{'layer':34s} {'size':>8s} {'norm@0':>8s} {'norm':>8s} {'cv':>6s} {'cos(seeds)':>18s} {'chance':>7s} {'gauss%0':>7s} {'gauss%':>7s}"
    lines = [head, "-" * len(head)]
    for r in s["layers"]:
        ci = r["align_ci"] or [None, None]
        lines.append(
            f"{r['layer'][:34]:34s} {r['size']:8d} {f(r['norm_init']):>8s} {f(r['norm_mean']):>8s} {f(r['norm_cv'], '.2f'):>6s} "
            f"{f(r['align_cos'], '.3f'):>6s} [{f(ci[0], '.2f')},{f(ci[1], '.2f')}] {f(r['chance'], '.4f'):>7s} "
            f"{f(r['gauss_init'], '.0f'):>7s} {f(r['gauss_after'], '.0f'):>7s}")
    lines.append("")
    lines += COLUMN_LEGEND
    lines.append("")
    t = s.get("norm_depth_trend")
    lines.append(f"norm depth trend: Spearman {f(t and t['spearman'], '+.2f')}, log-slope {f(t and t['log_slope'], '+.2f')}"
                 f"  ({PAPERS['000']}: norms fall with depth -> negative)")
    g = s.get("global_std") or {}
    lines.append(f"global gradient std s_t: {f(g.get('global_std_first'))} -> {f(g.get('global_std_last'))}, "
                 f"Spearman vs step {f(g.get('global_std_spearman'), '+.2f')}  ({PAPERS['002']}: decreasing)")
    for key, label in (("spectrum_init", "init"), ("spectrum_after", "after")):
        sp = s.get(key)
        if sp:
            lines.append(f"spectrum {label}: lambda1/lambda10 {f(sp['ratio_10'])}, effective rank 90% {sp['effective_rank_90']}"
                         f"/{sp['available']}, power-law s {f(sp.get('pl_s'), '.2f')}, KS {f(sp.get('pl_ks_distance'), '.3f')}"
                         f" (crit {f(sp.get('pl_ks_critical'), '.3f')}), vs lognormal: {sp.get('pl_preferred', '-')}")
    for key, label in (("gaussianity_init", "init"), ("gaussianity_after", "after")):
        gs = s.get(key)
        if gs:
            lines.append(f"SGN Gaussianity {label}: {f(gs['percent'], '.1f')} % of {gs['tested']} tested weights "
                         f"({gs['dead']} dead, {gs['samples']} samples each)")
    lines.append(f"training: {s['steps_done']}/{s['steps']} steps" + ("  DIVERGED (non-finite loss)" if s["diverged"] else "")
                 + (f", loss {s['loss_curve'][0]:.3f} -> {s['loss_curve'][-1]:.3f}" if s["loss_curve"] else ""))
    return "\n".join(lines)
