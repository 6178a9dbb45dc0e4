"""A population of configs and what the lab measures on each: scores, the long run, two trainings.

Seeds: the configs are the first N of a seeded ``optuna.samplers.RandomSampler`` study asked one trial at
a time (``space.sample(trial)``; a combination the space rejects is skipped), so a larger N with the same
seed extends a smaller run. Config i is built and trained with seed ``seed + i`` (as the search does with
trial numbers); the data split and probe batch use the population's seed.

One config's jobs (:class:`Job`, run by :func:`run_job` in a worker; every failure is a value of the
returned row, never raised but Ctrl-C):

* ``main``: ``nas.evaluate.evaluate`` with every requested metric and ``early_steps`` SGD steps (each metric
  at init ``<m>`` and after the steps ``<m>@early``, the derived values, :func:`score_config`); the long run
  (``long_steps``: the loss baselines ``<key>@<steps>``, with ``long_metrics`` every metric after those
  steps and the loss curve); ``nas.training.train`` for ``epochs`` epochs summarized by
  ``nas.validate.summarize`` (``val_*``);
* ``repeat``: a second training with seed ``seed + REPEAT_SEED_OFFSET`` (``rep_*``);
* ``fill``: the values of metrics added after a config was scored (init, early, long run): evaluation is
  seeded, so they are the values a full main job would have measured.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import traceback
from typing import Any, Callable, Sequence

import optuna

from nas.evaluate import TrialSpec, evaluate
from nas.search.keys import EARLY_SUFFIX
from nas.training import TrainSpec, train
from nas.training import summarize
from search_spaces import ConfigError, get_space

from .keys import LONG_KEYS

__all__ = ["DEFAULT_BOUNDS", "REPEAT_SEED_OFFSET", "SUMMARY_KEYS", "PopulationError", "default_bounds",
           "sample_configs", "Job", "score_config", "train_summary", "run_job"]

#: Default bounds per space: networks small enough for CPU training.
DEFAULT_BOUNDS: dict[str, dict[str, Any]] = {
    "resnet_cifar": {"blocks": [1, 2], "width": [8, 16], "batch_size": [32, 128]},
}
#: Seed offset of the second training of a repeated config.
REPEAT_SEED_OFFSET = 100_003
#: Values kept from ``nas.validate.summarize`` (prefix ``val_``; ``rep_`` for the repeat).
SUMMARY_KEYS = ("best_acc", "final_acc", "converged", "diverged", "final_train_loss", "first_batch_loss",
                "epochs_to_90", "time")


class PopulationError(ValueError):
    """A population that cannot be drawn (the space rejects nearly every sampled config)."""


def default_bounds(space_name: str) -> dict[str, Any]:
    """:data:`DEFAULT_BOUNDS` for the space, else the space's ``smoke_bounds``."""
    if space_name in DEFAULT_BOUNDS:
        return json.loads(json.dumps(DEFAULT_BOUNDS[space_name]))
    return json.loads(json.dumps(dict(get_space(space_name).smoke_bounds)))


def sample_configs(space: Any, n: int, seed: int, max_rejected: int = 1000) -> list[dict[str, Any]]:
    """The first ``n`` configs of a ``RandomSampler(seed)`` study (rejected combinations skipped); the
    configs for ``n`` are a prefix of those for any larger ``n``.

    Raises:
        PopulationError: more than ``max_rejected`` sampled configs rejected.
    """
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
                raise PopulationError(f"the space rejected {rejected} sampled configs; check --bounds") from None
    return configs


@dataclasses.dataclass
class Job:
    """One config's main job (score + long run + training), repeat job (a second training) or fill job."""

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


def train_summary(spec: TrainSpec, prefix: str = "val") -> dict[str, Any]:
    """Train ``spec`` and keep ``nas.validate.summarize``'s :data:`SUMMARY_KEYS` as ``<prefix>_<key>``, with
    the per-epoch test accuracy and train loss (``<prefix>_acc_curve``, ``<prefix>_train_loss_curve``, JSON)."""
    s = summarize(train(spec), "benchmark")
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
    """The ``long_steps`` run: the loss baselines ``<key>@<steps>``; with ``long_metrics`` also every
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
    after the early steps and after the long run; nothing else of the row changes."""
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
        _attempt(row, lambda: train_summary(job.train_spec(seed), "rep"), "rep_error", "time_repeat")
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

    _attempt(row, lambda: train_summary(job.train_spec(job.seed), "val"), "train_error", "time_train")
    return row
