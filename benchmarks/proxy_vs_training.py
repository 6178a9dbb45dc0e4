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
``nas.runner.make_executor`` (Ray).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import logging
import math
import os
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

try:
    import objectives  # noqa: F401
except ImportError:  # run from a checkout without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import optuna
from tqdm import tqdm

from nas.evaluate import EARLY_SUFFIX, TrialSpec, evaluate
from nas.report import stats as report_stats
from nas.report.stats import ALPHA, is_blank, is_true, key_direction, oriented_correlate, parse_number
from nas.study import DEFAULT_OBJECTIVES, Objective, metric_of, parse_objectives
from nas.training import TrainSpec, train
from nas.validate import summarize
from objectives import registry
from search_spaces import ConfigError, get_space

LOG = logging.getLogger("proxy_vs_training")

#: Bumped when the table's meaning changes; a table of another format is refused.
FORMAT = 1
#: Default bounds per space: networks small enough for CPU training.
DEFAULT_BOUNDS: dict[str, dict[str, Any]] = {
    "resnet_cifar": {"blocks": [1, 2], "width": [8, 16], "batch_size": [32, 128]},
}
#: Seed offset of the second training of a repeated config.
REPEAT_SEED_OFFSET = 100_003
#: Values of the long (``--long-steps``) run, stored as ``<key>@<steps>``.
LONG_KEYS = ("train_loss_last", "loss_early", "loss_drop", "train_kappa_w")
#: Derived values of the main run kept in the table (the loss baselines among them).
DERIVED = ("loss_init", "loss_early", "loss_drop", "train_loss_first", "train_loss_last", "train_kappa_w")
#: Keys of the training-loss baselines (an HPO user's first try), besides their ``@<steps>`` variants.
BASELINES = ("train_loss_last", "loss_early", "loss_drop")
#: Metrics that do not depend on the weights: their ``@early`` value repeats the init value.
WEIGHT_FREE = ("params", "flops")
ACC = "val_best_acc"
REP_ACC = "rep_best_acc"
COMBINED = "gradnas_mean_rank"
#: Values kept from ``nas.validate.summarize`` (prefix ``val_``; ``rep_`` for the repeat).
SUMMARY_KEYS = ("best_acc", "final_acc", "converged", "diverged", "final_train_loss", "first_batch_loss",
                "epochs_to_90", "time")
#: Leading columns of the table, in order.
ID_COLUMNS = ("index", "seed", "config", "settings", "main_done", "eval_status", "eval_error", "metric_errors",
              "long_error", "train_error", "rep_done", "rep_seed", "rep_error")
_LONG_RE = re.compile(r"^(?P<base>.+)@(?P<steps>\d+)$")
#: ``kind`` of a registered metric by its registry family.
_FAMILY_KINDS = {"thesis": "thesis", "zero_cost": "peer", "noise": "noise"}


# ------------------------------------------------------------------------------------------------------
# Keys: directions and kinds
# ------------------------------------------------------------------------------------------------------


def direction(key: str) -> str:
    """Better direction of a table key: ``nas.report.stats.key_direction``, the base key's for ``<key>@<steps>``,
    ``minimize`` for the combined rank."""
    if key == COMBINED:
        return "minimize"
    m = _LONG_RE.match(key)
    if m and metric_of(key) is None:
        return key_direction(m["base"])
    return key_direction(key)


def kind_of(key: str) -> str:
    """thesis / peer / noise (registered metrics, by ``registry.get(m).family``), baseline, derived, combined."""
    if key == COMBINED:
        return "combined"
    long = _LONG_RE.match(key)
    m = metric_of(key) or (metric_of(long["base"]) if long else None)
    if m is not None:
        return _FAMILY_KINDS[registry.get(m).family]
    base = _LONG_RE.match(key)
    base_key = base["base"] if base else key
    return "baseline" if base_key in BASELINES else "derived"


def proxy_keys(columns: Sequence[str]) -> list[str]:
    """The proxy columns of a table, in order: each metric at init then after the early steps (registry
    order; ``params@early``/``flops@early`` left out: they equal ``params``/``flops``), the derived values,
    then the ``@<steps>`` values of the long run."""
    cols = set(columns)
    keys = []
    for m in registry.names():
        keys.append(m)
        if m not in WEIGHT_FREE:
            keys.append(f"{m}{EARLY_SUFFIX}")
    keys += list(DERIVED)
    keys += sorted((c for c in cols if _LONG_RE.match(c) and metric_of(c) is None
                    and _LONG_RE.match(c)["base"] in LONG_KEYS), key=lambda c: (int(_LONG_RE.match(c)["steps"]), c))
    long_metrics = [c for c in cols if _LONG_RE.match(c) and metric_of(_LONG_RE.match(c)["base"])]
    order = {m: i for i, m in enumerate(registry.names())}
    keys += sorted(long_metrics, key=lambda c: (int(_LONG_RE.match(c)["steps"]), order[_LONG_RE.match(c)["base"]]))
    seen, out = set(), []
    for k in keys:
        if k in cols and k not in seen:
            seen.add(k)
            out.append(k)
    return out


# ------------------------------------------------------------------------------------------------------
# Configs
# ------------------------------------------------------------------------------------------------------


def default_bounds(space_name: str) -> dict[str, Any]:
    """:data:`DEFAULT_BOUNDS` for the space, else the space's ``smoke_bounds``."""
    if space_name in DEFAULT_BOUNDS:
        return json.loads(json.dumps(DEFAULT_BOUNDS[space_name]))
    return json.loads(json.dumps(dict(get_space(space_name).smoke_bounds)))


def sample_configs(space: Any, n: int, seed: int, max_rejected: int = 1000) -> list[dict[str, Any]]:
    """The first ``n`` configs of a ``RandomSampler(seed)`` study (rejected combinations skipped); the
    configs for ``n`` are a prefix of those for any larger ``n``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    configs: list[dict[str, Any]] = []
    rejected = 0
    while len(configs) < n:
        trial = study.ask()
        try:
            configs.append(space.sample(trial))
        except ConfigError:
            rejected += 1
            if rejected > max_rejected:
                raise SystemExit(f"error: the space rejected {rejected} sampled configs; check --bounds") from None
    return configs


# ------------------------------------------------------------------------------------------------------
# One job (runs in a worker: module-level, picklable spec, never raises but on Ctrl-C)
# ------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Job:
    """One config's main job (score + long run + training) or repeat job (a second training)."""

    kind: str  # "main" | "repeat" | "fill"
    index: int
    space: str
    config: dict[str, Any]
    dataset: str
    bounds: dict[str, Any]
    data_dir: str
    metrics: list[str]
    early_steps: int
    long_steps: int
    epochs: int
    probe_size: int
    seed: int
    data_seed: int
    threads: int | None = None
    long_metrics: bool = False

    def trial_spec(self, **changes: Any) -> TrialSpec:
        spec = TrialSpec(space=self.space, config=dict(self.config), dataset=self.dataset, bounds=self.bounds,
                         data_dir=self.data_dir, metrics=list(self.metrics), early_steps=self.early_steps,
                         probe_size=self.probe_size, seed=self.seed, data_seed=self.data_seed,
                         threads=self.threads)
        return dataclasses.replace(spec, **changes)

    def train_spec(self, seed: int) -> TrainSpec:
        return TrainSpec(space=self.space, config=dict(self.config), dataset=self.dataset, epochs=self.epochs,
                         bounds=self.bounds, data_dir=self.data_dir, seed=seed, data_seed=self.data_seed,
                         threads=self.threads, trial=self.index)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if type(exc).__name__ == "TrialFailed":
        return text[:500]
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
    return f"{type(exc).__name__}: {text}{where}"[:500]


def _scalars(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("seed",)}


def score_config(spec: TrialSpec) -> tuple[dict[str, float] | None, dict[str, str], str | None]:
    """``evaluate(spec)``, with the metrics that failed on this config set apart.

    A metric fails on a config when it is undefined there (``evaluate``'s ``metric_errors``) or its value
    is not finite, at init or after the early steps; a failing metric loses both its values (the table
    holds only values that were measured).

    Returns:
        ``(values, metric_errors, eval_error)``: the numeric values (None when the config itself failed),
        metric -> reason for each metric that failed, and the config's failure reason (or None).
    """
    try:
        result = evaluate(spec)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - TrialFailed (the config itself) or an unexpected error
        return None, {}, _reason(exc)
    values, errors = _measured(result, spec.metrics)
    return values, errors, None


def _measured(result: dict[str, Any], metrics: Sequence[str]) -> tuple[dict[str, float], dict[str, str]]:
    """(numeric values, metric -> reason) of one ``evaluate`` result; see :func:`score_config`."""
    values = _scalars(result)
    errors: dict[str, str] = {}
    for key, reason in (result.get("metric_errors") or {}).items():
        metric, phase = (key[: -len(EARLY_SUFFIX)], "early steps") if key.endswith(EARLY_SUFFIX) else (key, "init")
        errors.setdefault(metric, f"scoring at {phase} failed: {reason}"[:500])
    for metric in metrics:
        for key, phase in ((metric, "init"), (f"{metric}{EARLY_SUFFIX}", "early steps")):
            v = values.get(key)
            if v is not None and not math.isfinite(v):
                errors.setdefault(metric, f"metric {metric} at {phase} is not finite ({v})")
    for m in errors:  # values of a failed metric never come from another run
        values.pop(m, None)
        values.pop(f"{m}{EARLY_SUFFIX}", None)
    return values, errors


def _summary(history: dict[str, Any], prefix: str) -> dict[str, Any]:
    s = summarize(history, "benchmark")
    out = {f"{prefix}_{k}": s.get(f"val_{k}") for k in SUMMARY_KEYS}
    out[f"{prefix}_acc_curve"] = json.dumps(s.get("val_acc_curve"))
    out[f"{prefix}_train_loss_curve"] = json.dumps(s.get("val_loss_curve"))
    return out


def _attempt(row: dict[str, Any], step: Callable[[], dict[str, Any]], error_key: str, time_key: str) -> None:
    """Run ``step``; its values go into ``row``, its failure reason into ``row[error_key]`` (never raised,
    but Ctrl-C), its seconds into ``row[time_key]``."""
    t = time.perf_counter()
    try:
        row.update(step())
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001
        row[error_key] = _reason(exc)
    row[time_key] = time.perf_counter() - t


def _long_run(job: Job) -> dict[str, Any]:
    """The ``--long-steps`` run: the loss baselines ``<key>@<steps>``; with ``--long-metrics`` also every
    metric after those steps (``<metric>@<steps>``, not again at init) and the loss curve."""
    steps = job.long_steps
    if not job.long_metrics:
        long = evaluate(job.trial_spec(metrics=["params"], early_steps=steps))
        return {f"{k}@{steps}": long[k] for k in LONG_KEYS}
    result = evaluate(job.trial_spec(early_steps=steps, score_init=False))
    values, errors = _measured(result, job.metrics)
    long = {f"{k}@{steps}": values[k] for k in LONG_KEYS if k in values}
    long.update({f"{k[: -len(EARLY_SUFFIX)]}@{steps}": v for k, v in values.items() if k.endswith(EARLY_SUFFIX)})
    long[f"loss_curve@{steps}"] = json.dumps([round(v, 6) for v in result["loss_curve"]])
    if errors:
        long[f"metric_errors@{steps}"] = json.dumps(errors, sort_keys=True)
    return long


def _fill(job: Job) -> dict[str, Any]:
    """Values of metrics added to the run after a config was scored (``job.metrics``: only those): at init,
    after the early steps and after the long run. Evaluation is seeded, so they are the values a full
    main job would have measured; nothing else of the row changes."""
    row: dict[str, Any] = {"index": job.index}
    values, errors, failure = score_config(job.trial_spec())
    if failure:
        row["fill_error"] = failure
        return row
    keep = set(job.metrics) | {f"{m}{EARLY_SUFFIX}" for m in job.metrics}
    row.update({k: v for k, v in values.items() if k in keep})
    if job.long_steps > 0 and job.long_metrics:
        try:
            long = _long_run(job)
        except KeyboardInterrupt:
            raise
        except Exception:  # noqa: BLE001 - the long run fails here as it did in the main job (long_error)
            long = {}
        row.update({f"{m}@{job.long_steps}": long[f"{m}@{job.long_steps}"] for m in job.metrics
                    if f"{m}@{job.long_steps}" in long})
        errors.update({f"{m}@{job.long_steps}": r for m, r in
                       json.loads(long.get(f"metric_errors@{job.long_steps}") or "{}").items()})
    row["fill_errors"] = errors
    return row


def run_job(job: Job) -> dict[str, Any]:
    """Run one job; every failure is recorded in the returned row fragment, never raised (but Ctrl-C)."""
    if job.kind == "fill":
        try:
            return _fill(job)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001
            return {"index": job.index, "fill_error": _reason(exc)}
    row: dict[str, Any] = {"index": job.index}
    if job.kind == "repeat":
        seed = job.seed + REPEAT_SEED_OFFSET
        row.update(rep_seed=seed, rep_done=True, rep_error=None)
        _attempt(row, lambda: _summary(train(job.train_spec(seed)), "rep"), "rep_error", "time_repeat")
        return row

    row.update(main_done=True, eval_error=None, metric_errors=None, long_error=None, train_error=None)
    t = time.perf_counter()
    values, errors, failure = score_config(job.trial_spec())
    row["time_eval"] = time.perf_counter() - t
    if values is not None:
        row.update({k: v for k, v in values.items() if not k.startswith("time_")})
    row["eval_status"] = "failed" if failure else ("partial" if errors else "ok")
    row["eval_error"] = failure
    row["metric_errors"] = json.dumps(errors, sort_keys=True) if errors else None

    if job.long_steps > 0 and job.long_steps != job.early_steps:
        _attempt(row, lambda: _long_run(job), "long_error", "time_long")

    _attempt(row, lambda: _summary(train(job.train_spec(job.seed)), "val"), "train_error", "time_train")
    return row


# ------------------------------------------------------------------------------------------------------
# The table on disk
# ------------------------------------------------------------------------------------------------------


def load_table(path: str | Path) -> pd.DataFrame:
    """The saved table (``index`` as a column), or an empty frame when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=list(ID_COLUMNS))
    df = pd.read_csv(path)
    missing = [c for c in ("index", "config", "settings") if c not in df.columns]
    if missing:
        raise SystemExit(f"error: {path} is not a table of this script (no column(s) {missing})")
    return df


def _column_order(columns: Sequence[str]) -> list[str]:
    cols = list(dict.fromkeys(columns))
    first = [c for c in ID_COLUMNS if c in cols]
    metrics = proxy_keys(cols)
    results = [c for c in cols if c.startswith(("val_", "rep_")) and c not in first]
    times = sorted(c for c in cols if c.startswith("time_"))
    rest = [c for c in cols if c not in set(first) | set(metrics) | set(results) | set(times)]
    return first + metrics + rest + results + times


def save_table(path: str | Path, rows: dict[int, dict[str, Any]]) -> None:
    """Write the rows (sorted by index) atomically: temporary file + ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame([rows[i] for i in sorted(rows)])
    df = df[_column_order(df.columns)]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    df.to_csv(tmp, index=False, compression="gzip" if path.suffix == ".gz" else None)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------------
# Analysis
# ------------------------------------------------------------------------------------------------------


def finished(df: pd.DataFrame, n: int | None = None) -> pd.DataFrame:
    """Rows (of the first ``n`` configs) whose main job finished, sorted by index."""
    if df.empty:
        return df
    out = df[df["main_done"].map(is_true)] if "main_done" in df.columns else df.iloc[0:0]
    if n is not None:
        out = out[out["index"].astype(int) < n]
    return out.sort_values("index").reset_index(drop=True)


def default_objectives() -> list[Objective]:
    return parse_objectives(DEFAULT_OBJECTIVES)


def mean_rank(df: pd.DataFrame, objs: Sequence[Objective] | None = None) -> np.ndarray:
    """The combined multi-metric rank (module docstring): mean over ``objs`` (default: the default search's
    objectives) of each row's rank in the objective's better direction (1 = best, average ties), over the
    rows where every objective is finite; NaN for the others."""
    objs = list(objs or default_objectives())
    if len(df) == 0 or any(o.key not in df.columns for o in objs):
        return np.full(len(df), np.nan)
    vals = np.column_stack([df[o.key].map(parse_number).to_numpy(dtype=float) for o in objs])
    return report_stats.mean_rank(vals, [o.direction for o in objs])


def correlation_rows(df: pd.DataFrame, objs: Sequence[Objective] | None = None) -> list[dict[str, Any]]:
    """One row per proxy key (and the combined rank): oriented tau/rho vs ``val_best_acc``, p-values, n."""
    df = df.copy()
    df[COMBINED] = mean_rank(df, objs)
    acc = df[ACC].map(parse_number).tolist() if ACC in df.columns else [math.nan] * len(df)
    rows = []
    for key in proxy_keys(df.columns) + [COMBINED]:
        d = direction(key)
        c = oriented_correlate(df[key].map(parse_number).tolist(), acc, d)
        rows.append({
            "key": key, "kind": kind_of(key), "direction": d, "n": c["n"],
            "tau": c["kendall_tau"], "tau_p": c["kendall_p"], "rho": c["spearman_rho"], "rho_p": c["spearman_p"],
            "ns": None if c["kendall_p"] is None else bool(c["kendall_p"] > ALPHA),
            "note": c["note"],
        })
    rows.sort(key=lambda r: (r["tau"] is None, -(r["tau"] if r["tau"] is not None else 0.0), r["key"]))
    return rows


def noise_ceiling(df: pd.DataFrame) -> dict[str, Any]:
    """Seed-to-seed agreement of best accuracy over the repeated configs (``nas.report.stats.noise_ceiling``)."""
    if REP_ACC not in df.columns or ACC not in df.columns:
        return report_stats.noise_ceiling([], [])
    return report_stats.noise_ceiling(df[ACC].map(parse_number).to_numpy(float),
                                      df[REP_ACC].map(parse_number).to_numpy(float))


def _f(v: Any, fmt: str = "+.3f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    text = format(v, fmt)
    return text.replace("-0.000", "+0.000")


def format_correlations(rows: Sequence[dict[str, Any]]) -> str:
    header = f"{'key':26s} {'kind':8s} {'dir':3s} {'n':>3s} {'tau':>7s} {'p(tau)':>8s} {'rho':>7s} {'p(rho)':>8s}"
    lines = [header, "-" * len(header)]
    for r in rows:
        if r["tau"] is None:
            lines.append(f"{r['key']:26s} {r['kind']:8s} {r['direction'][:3]:3s} {r['n']:3d} {r['note']}")
            continue
        lines.append(
            f"{r['key']:26s} {r['kind']:8s} {r['direction'][:3]:3s} {r['n']:3d} {_f(r['tau']):>7s} "
            f"{_f(r['tau_p'], '.2g'):>8s} {_f(r['rho']):>7s} {_f(r['rho_p'], '.2g'):>8s}"
            + ("  ns" if r["ns"] else ""))
    return "\n".join(lines)


def _reasons(values: Sequence[Any], top: int = 5) -> str:
    tally = collections.Counter(" ".join(str(v).split())[:90] for v in values if not is_blank(v))
    return "; ".join(f"{n}x {r}" for r, n in tally.most_common(top))


def counts_text(df: pd.DataFrame, n_sampled: int, n_repeat: int) -> str:
    """Outcome counts of the first ``n_sampled`` configs, with the most common failure reasons."""
    lines = []
    done = finished(df, n_sampled)
    lines.append(f"configs: {n_sampled} sampled, {len(done)} finished")
    if done.empty:
        return "\n".join(lines)
    status = collections.Counter(done["eval_status"].fillna("?"))
    lines.append("scoring: " + ", ".join(f"{status.get(s, 0)} {s}" for s in ("ok", "partial", "failed")))
    if status.get("failed"):
        lines.append(f"  failed configs: {_reasons(done['eval_error'])}")
    if status.get("partial"):
        per_metric: collections.Counter = collections.Counter()
        for text in done["metric_errors"]:
            if not is_blank(text):
                per_metric.update(json.loads(text).keys())
        lines.append("  failed metrics (configs): " + ", ".join(f"{m} {k}" for m, k in per_metric.most_common()))
    long_err = done["long_error"] if "long_error" in done else pd.Series(dtype=object)
    if long_err.map(lambda v: not is_blank(v)).any():
        lines.append(f"long run failed: {int(long_err.map(lambda v: not is_blank(v)).sum())} ({_reasons(long_err)})")
    acc = done[ACC].map(parse_number) if ACC in done else pd.Series([math.nan] * len(done))
    trained = int(np.isfinite(acc.to_numpy(float)).sum())
    diverged = int(done["val_diverged"].map(is_true).sum()) if "val_diverged" in done else 0
    converged = int(done["val_converged"].map(is_true).sum()) if "val_converged" in done else 0
    lines.append(f"training: {trained} trained ({converged} converged, {trained - converged} not converged, "
                 f"{diverged} diverged), {len(done) - trained} errors")
    if len(done) - trained and "train_error" in done:
        lines.append(f"  training errors: {_reasons(done['train_error'])}")
    if trained:
        a = acc.to_numpy(float)
        a = a[np.isfinite(a)]
        lines.append(f"best test accuracy: min {a.min():.3f}, median {np.median(a):.3f}, max {a.max():.3f}")
    reps = df[(df["index"].astype(int) < n_repeat)] if "rep_done" in df else df.iloc[0:0]
    reps = reps[reps["rep_done"].map(is_true)] if not reps.empty else reps
    if n_repeat:
        errs = int(reps["rep_error"].map(lambda v: not is_blank(v)).sum()) if not reps.empty else 0
        lines.append(f"repeats: {len(reps)} of {n_repeat} trained a second time ({errs} errors)")
    times = []
    first = df[df["index"].astype(int) < n_sampled]
    for col, name in (("time_eval", "scoring"), ("time_long", "long run"), ("time_train", "training"),
                      ("time_repeat", "repeat training")):
        if col in first:
            t = first[col].map(parse_number).to_numpy(float)
            t = t[np.isfinite(t)]
            if len(t):
                times.append(f"{name} {t.mean():.1f} s (max {t.max():.1f})")
    if times:
        lines.append("mean time per config: " + ", ".join(times))
    return "\n".join(lines)


def report(df: pd.DataFrame, n: int, n_repeat: int, epochs: int | None = None) -> str:
    """The printed report: counts, the oriented correlation table, the noise ceiling."""
    done = finished(df, n)
    parts = [counts_text(df, n, n_repeat), ""]
    objs = default_objectives()
    parts.append(
        f"Oriented Kendall tau / Spearman rho vs best test accuracy ({ACC}"
        + (f", {epochs} epoch(s)" if epochs else "") + f") over the {len(done)} finished configs. "
        "+ = the nets the key prefers are the accurate ones; ns: Kendall p > 0.05; n: configs with both "
        "values finite; undefined: n < 3 or a constant column.\n"
        f"{COMBINED}: mean rank of the default objectives ({', '.join(str(o) for o in objs)}).")
    parts.append(format_correlations(correlation_rows(done, objs)))
    c = noise_ceiling(finished(df, n_repeat))
    parts.append("")
    if c["kendall_tau"] is None:
        parts.append(f"noise ceiling (seed-to-seed tau of best accuracy): {c['note'] or 'no repeats'} (n={c['n']})")
    else:
        ns = " ns" if c["kendall_p"] > ALPHA else ""
        parts.append(
            f"noise ceiling (seed-to-seed Kendall tau of best accuracy, n={c['n']}): {_f(c['kendall_tau'])}{ns} "
            f"(p={c['kendall_p']:.2g}); Spearman rho {_f(c['spearman_rho'])}; mean |acc difference| "
            f"{c['mean_abs_diff']:.3f}")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------------


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


def _needs_retry(row: dict[str, Any]) -> bool:
    return row.get("eval_status") == "failed" or not is_blank(row.get("train_error")) or not is_blank(row.get("long_error"))


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
    settings = {"format": FORMAT, "space": args.space, "dataset": args.dataset, "bounds": bounds,
                "epochs": args.epochs, "early_steps": args.early_steps, "long_steps": args.long_steps,
                **({"long_metrics": True} if args.long_metrics else {}),
                "seed": args.seed, "probe_size": args.probe_size, "metrics": sorted(metrics)}
    settings_text = json.dumps(settings, sort_keys=True)
    configs = sample_configs(space, args.archs, args.seed)
    n_repeat = min(args.repeat, args.archs)

    table = load_table(out)
    rows: dict[int, dict[str, Any]] = {}
    for rec in table.to_dict("records"):
        i = int(rec["index"])
        theirs = json.loads(rec["settings"])
        diff = sorted(k for k in set(theirs) | set(settings) if k != "metrics" and theirs.get(k) != settings.get(k))
        if diff:
            raise SystemExit(f"error: {out} was made with other settings ({', '.join(diff)}); use another --out")
        if i < len(configs) and json.loads(rec["config"]) != configs[i]:
            raise SystemExit(f"error: config {i} in {out} is not the one sampled now; use another --out")
        rows[i] = {k: (None if is_blank(v) else v) for k, v in rec.items()}

    data_dir = str(Path(args.data_dir).resolve())
    jobs: list[Job] = []
    for i, config in enumerate(configs):
        base = dict(index=i, space=args.space, config=config, dataset=args.dataset, bounds=bounds,
                    data_dir=data_dir, metrics=metrics, early_steps=args.early_steps, long_steps=args.long_steps,
                    long_metrics=args.long_metrics,
                    epochs=args.epochs, probe_size=args.probe_size, seed=args.seed + i, data_seed=args.seed,
                    threads=args.threads)
        row = rows.get(i, {})
        if not is_true(row.get("main_done")) or (args.retry_failed and _needs_retry(row)):
            jobs.append(Job(kind="main", **base))
        else:  # metrics added since this config was scored: measure just those
            scored = set(json.loads(row["settings"]).get("metrics", []))
            missing = [m for m in metrics if m not in scored]
            if missing and row.get("eval_status") != "failed":
                jobs.append(Job(kind="fill", **{**base, "metrics": missing}))
            elif missing:  # nothing can be measured on a config whose early steps fail
                row["settings"] = settings_text
        rep_todo = not is_true(row.get("rep_done")) or (args.retry_failed and not is_blank(row.get("rep_error")))
        if i < n_repeat and rep_todo:
            jobs.append(Job(kind="repeat", **base))
    n_main = sum(j.kind == "main" for j in jobs)
    n_fill = sum(j.kind == "fill" for j in jobs)
    print(f"{out}: {args.archs} config(s) of {args.space} on {args.dataset} "
          f"(bounds {json.dumps(bounds)}), {len(metrics)} metric(s), {args.epochs} epoch(s); "
          f"{args.archs - n_main} already done, {n_main} to score and train, "
          f"{len(jobs) - n_main - n_fill} repeat training(s) to run, {n_fill} to fill with new metrics", flush=True)

    from nas.data import DatasetError, load_dataset
    from nas.runner import make_executor

    if jobs:
        try:  # fail fast, here, rather than once per config
            load_dataset(args.dataset, data_dir, seed=args.seed)
        except DatasetError as exc:
            raise SystemExit(f"error: {exc}") from None
        workers = min(args.workers, len(jobs))
        executor = make_executor(workers, run_job)
        bar = tqdm(total=len(jobs), desc="jobs", unit="job", disable=args.no_progress, dynamic_ncols=True)
        queue = list(range(len(jobs)))
        in_flight: set[int] = set()
        problems = 0
        try:
            while queue or in_flight:
                while queue and len(in_flight) < workers:
                    k = queue.pop(0)
                    executor.submit(k, jobs[k])
                    in_flight.add(k)
                for k, status, payload in executor.wait():
                    in_flight.discard(k)
                    job = jobs[k]
                    row = rows.setdefault(job.index, {})
                    earlier = row.get("settings")  # the metrics a row holds: updated by main and fill jobs only
                    row.update(index=job.index, seed=job.seed, config=json.dumps(job.config), settings=settings_text)
                    if earlier and (job.kind == "repeat" or job.kind == "fill" and
                                    (status != "ok" or payload.get("fill_error"))):
                        row["settings"] = earlier
                    if status == "ok" and job.kind == "fill":
                        errors = json.loads(row.get("metric_errors") or "{}")
                        errors.update(payload.pop("fill_errors", {}))
                        row.update(payload, metric_errors=json.dumps(errors, sort_keys=True) if errors else None)
                        bad = bool(payload.get("fill_error"))
                    elif status == "ok":
                        if job.kind == "main":  # a rerun replaces the whole main part
                            for key in [key for key in row if not key.startswith(("rep_", "time_repeat"))]:
                                if key not in ("index", "seed", "config", "settings"):
                                    del row[key]
                        row.update(payload)
                        if job.kind == "main":
                            bad = payload.get("eval_status") != "ok" or bool(payload.get("train_error"))
                        else:
                            bad = bool(payload.get("rep_error"))
                    else:  # the worker itself failed (crash, kill): retried by the next run
                        key = {"main": "train_error", "repeat": "rep_error", "fill": "fill_error"}[job.kind]
                        row[key] = f"worker: {payload}"
                        bad = True
                    problems += int(bool(bad))
                    save_table(out, rows)
                    bar.update(1)
                    bar.set_postfix(problems=problems, refresh=False)
        except KeyboardInterrupt:
            print(f"\ninterrupted: finished jobs are saved in {out}; rerun to go on", file=sys.stderr)
            return 130
        finally:
            bar.close()
            executor.shutdown()

    df = load_table(out)
    print()
    print(report(df, args.archs, n_repeat, args.epochs))
    print(f"\ntable: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
