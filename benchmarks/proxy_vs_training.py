"""Our own ground truth: how well each metric, measured before training, predicts full-training accuracy.

Samples N configurations of a search space, scores every registered metric (the thesis metrics, the peer
zero-cost proxies and the gradient-noise metrics) at initialization and after the early training steps,
records the plain baseline every HPO user tries first — the training loss after a few steps — then
trains every configuration fully and prints Kendall's tau and Spearman's rho of each metric against the
best test accuracy, side by side, with a combined multi-metric rank and the seed-to-seed noise ceiling.
The per-config table (CSV) is saved so that later runs, and ``benchmarks/search_efficiency.py``, reuse it.

Usage::

    python benchmarks/proxy_vs_training.py --space resnet_cifar --dataset mnist5k --archs 40 --epochs 3 \\
        --out runs/proxy_vs_training/resnet_mnist5k.csv
    python benchmarks/search_efficiency.py --table runs/proxy_vs_training/resnet_mnist5k.csv

What one configuration costs (the "main" job of config i)
    1. ``nas.evaluate.evaluate`` with every requested metric (``--metrics``, default: all registered)
       and ``--early-steps`` (20) SGD steps: each metric at init (``<m>``) and after the steps
       (``<m>@early``), plus the derived values ``loss_init``, ``loss_early`` (probe-batch loss before /
       after the steps), ``loss_drop``, ``train_loss_first`` / ``train_loss_last`` (mean training loss of
       the first / last 5 steps: ``train_loss_last`` is the **loss baseline after the early steps**),
       ``train_kappa_w``, ``params``, ``flops``.
    2. A second, metric-free ``evaluate`` (``metrics=["params"]``) with ``--long-steps`` (50) steps: the
       same seed, batches and weights, so its first steps are the first run's; it gives the **loss
       baseline after 50 steps**, stored as ``train_loss_last@50``, ``loss_early@50``, ``loss_drop@50``
       and ``train_kappa_w@50`` (``--long-steps 0`` skips it).
    3. ``nas.training.train`` for ``--epochs`` epochs (the standard recipe of ``python -m nas validate``),
       summarized by ``nas.validate.summarize``: ``val_best_acc`` (best test accuracy over the epochs: the
       target of every correlation), ``val_final_acc``, ``val_converged`` (the validation's convergence
       rule: not diverged and final train loss < 0.5 ln(classes)), ``val_diverged``, ...
    The "repeat" job of config i < ``--repeat`` trains it once more with seed ``seed_i + 100003``
    (another initialization and batch order): ``rep_best_acc``, ``rep_final_acc``, ``rep_converged``,
    ``rep_diverged``.

Seeds
    The configs are the first N of a seeded ``optuna.samplers.RandomSampler(seed=--seed)`` study asked
    one trial at a time (``space.sample(trial)``; a combination the space rejects is skipped), so a larger
    N with the same seed extends a smaller run. Config i is built and trained with seed ``--seed + i``
    (as the search does with trial numbers); the data split and probe batch use ``--seed``.

Failures are rows, never dropped
    * ``eval_status``: ``ok``; ``partial`` when some metrics failed (``metric_errors``: metric ->
      reason; ``evaluate`` fails a whole trial for one bad metric, so the metrics are re-scored in
      halves until each failing one is isolated — a failing metric loses its init and early values, the
      others keep theirs); ``failed`` (``eval_error``: the config itself failed, e.g. a non-finite loss
      in the early steps; no metric values). The config is trained in every case.
    * ``long_error``, ``train_error``, ``rep_error``: why that step produced nothing. A diverged
      training is a result (``val_diverged``), not an error.
    The counts are printed with the most common reasons.

The table
    ``--out`` (CSV; default ``runs/proxy_vs_training/<space>_<dataset>_s<seed>_e<epochs>.csv``): one row
    per config: ``index``, ``seed``, ``config`` (JSON), ``settings`` (JSON: everything the values depend
    on), every metric and derived value, accuracies, convergence, repeat accuracy, timings (``time_*``,
    seconds). It is rewritten atomically (temporary file + ``os.replace``) after every finished job, so
    the run can be stopped at any time; rerunning with the same ``--out`` skips finished jobs (a table
    made with other settings is refused; ``--retry-failed`` reruns configs whose scoring or training
    failed).

The correlation table
    Over the first N rows whose training finished: for each key, Kendall's tau-b and Spearman's rho with
    two-sided p-values and n from ``nas.report.stats.correlate`` (pairs with both values finite; *undefined*
    when n < 3 or a column is constant — never 0). Every key is **oriented** by its better direction (the
    registry's for metrics, ``nas.report.stats.key_direction`` for derived values, the base key's for ``@50``
    keys): tau and rho are multiplied by -1 for minimized keys, so a positive value always means "the
    nets the metric prefers are the accurate ones". ``ns``: Kendall p > 0.05. Rows are sorted by
    oriented tau. ``kind``: thesis / peer / noise metric (its registry ``family``: thesis, zero_cost,
    noise), ``baseline`` (training-loss baselines), ``derived``, ``combined``. ``params@early`` and
    ``flops@early`` equal ``params`` and ``flops`` and are left out.

    **Combined multi-metric rank** (``gradnas_mean_rank``, minimized): the mean, over the objectives a
    default search optimizes (``nas.study.DEFAULT_OBJECTIVES``: confusion, diversity, kappa_w at init,
    all minimized), of each config's rank by that objective (1 = best in its direction, ties share the
    average rank, ``scipy.stats.rankdata``), among the configs where all of them are finite (the others
    have no combined rank, as a default search would fail them).

    **Noise ceiling**: Kendall's tau between ``val_best_acc`` and ``rep_best_acc`` over the repeated
    configs: how well one training run ranks the configs for another; no proxy can be expected to beat
    it.

Speed: each job uses ``--threads`` torch threads (default 1: small nets gain little from more, and
oversubscribed shared cores slow them many times over); ``--workers W > 1`` runs W jobs at once through
``nas.search.executor.make_executor`` (Ray).

The logic is ``nas.lab``: ``nas.lab.population`` (sampling, one config's jobs), ``nas.lab.build`` (the
resumable table), ``nas.lab.correlations`` (the report); this script parses the command line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

try:
    import nas  # noqa: F401
except ImportError:  # run from a checkout without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nas.lab.build import TableError, load_table, plan_jobs, read_rows, run_jobs, settings_of
from nas.lab.correlations import report
from nas.lab.population import DEFAULT_BOUNDS, PopulationError, default_bounds, sample_configs
from objectives import registry
from search_spaces import get_space


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="resnet_cifar", help="search space (default: %(default)s)")
    p.add_argument("--dataset", default="mnist5k", help="dataset (default: %(default)s)")
    p.add_argument("--archs", type=int, required=True, help="number of sampled configs N")
    p.add_argument("--epochs", type=int, default=3, help="training epochs (default: %(default)s)")
    p.add_argument("--bounds", default=None,
                   help="JSON bounds narrowing the space (default for resnet_cifar: "
                        f"{json.dumps(DEFAULT_BOUNDS['resnet_cifar'])}; else the space's smoke bounds)")
    p.add_argument("--early-steps", type=int, default=20, help="steps before the early scoring (default: %(default)s)")
    p.add_argument("--long-steps", type=int, default=50,
                   help="steps of the second loss baseline; 0: skip it (default: %(default)s)")
    p.add_argument("--long-metrics", action="store_true",
                   help="also score every metric after the long run (<metric>@<long-steps>) and keep its loss "
                        "curve (loss_curve@<long-steps>, JSON): the proxy lab's setting")
    p.add_argument("--repeat", type=int, default=8,
                   help="configs trained a second time with another seed (default: %(default)s, at most N)")
    p.add_argument("--seed", type=int, default=0, help="sampling, model and data seed (default: %(default)s)")
    p.add_argument("--metrics", default="all",
                   help="'all' (every registered metric) or a comma-separated list (default: %(default)s)")
    p.add_argument("--probe-size", type=int, default=64, help="probe batch size (default: %(default)s)")
    p.add_argument("--workers", type=int, default=1, help="parallel jobs; > 1 uses Ray (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per job (default: %(default)s)")
    p.add_argument("--data-dir", default="data", help="torchvision datasets folder (default: %(default)s)")
    p.add_argument("--out", default=None, help="the table (CSV; default under runs/proxy_vs_training/)")
    p.add_argument("--retry-failed", action="store_true", help="rerun configs whose scoring or training failed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    for name in ("archs", "epochs", "workers", "threads", "probe_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    for name in ("early_steps", "long_steps", "repeat"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0")
    return args


def _metrics(text: str) -> list[str]:
    if text.strip().lower() == "all":
        return registry.names()
    names = [m.strip() for m in text.split(",") if m.strip()]
    for m in names:
        registry.get(m)  # raises with the valid names
    return names


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        metrics = _metrics(args.metrics)
    except KeyError as exc:
        raise SystemExit(f"error: {exc}") from None
    bounds = json.loads(args.bounds) if args.bounds else default_bounds(args.space)
    try:
        space = get_space(args.space, **bounds)
    except (KeyError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    out = Path(args.out or Path("runs") / "proxy_vs_training" /
               f"{args.space}_{args.dataset}_s{args.seed}_e{args.epochs}.csv")
    settings = settings_of(args.space, args.dataset, bounds, args.epochs, args.early_steps, args.long_steps,
                           args.long_metrics, args.seed, args.probe_size, metrics)
    settings_text = json.dumps(settings, sort_keys=True)
    try:
        configs = sample_configs(space, args.archs, args.seed)
        rows = read_rows(load_table(out), settings, configs, out)
    except (PopulationError, TableError) as exc:
        raise SystemExit(f"error: {exc}") from None
    n_repeat = min(args.repeat, args.archs)
    data_dir = str(Path(args.data_dir).resolve())
    jobs = plan_jobs(configs, rows, settings_text, n_repeat, args.retry_failed, args.seed, metrics,
                     space=args.space, dataset=args.dataset, bounds=bounds, data_dir=data_dir,
                     early_steps=args.early_steps, long_steps=args.long_steps, long_metrics=args.long_metrics,
                     epochs=args.epochs, probe_size=args.probe_size, threads=args.threads)
    n_main = sum(j.kind == "main" for j in jobs)
    n_fill = sum(j.kind == "fill" for j in jobs)
    print(f"{out}: {args.archs} config(s) of {args.space} on {args.dataset} "
          f"(bounds {json.dumps(bounds)}), {len(metrics)} metric(s), {args.epochs} epoch(s); "
          f"{args.archs - n_main} already done, {n_main} to score and train, "
          f"{len(jobs) - n_main - n_fill} repeat training(s) to run, {n_fill} to fill with new metrics", flush=True)

    if jobs:
        from nas.data import DatasetError, load_dataset

        try:  # fail fast, here, rather than once per config
            load_dataset(args.dataset, data_dir, seed=args.seed)
        except DatasetError as exc:
            raise SystemExit(f"error: {exc}") from None
        try:
            run_jobs(jobs, rows, out, args.workers, settings_text, progress=not args.no_progress)
        except KeyboardInterrupt:
            print(f"\ninterrupted: finished jobs are saved in {out}; rerun to go on", file=sys.stderr)
            return 130

    df = load_table(out)
    print()
    print(report(df, args.archs, n_repeat, args.epochs))
    print(f"\ntable: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
