"""Trial execution: Optuna ask/tell in the driver, trials in Ray tasks (or in process).

Pattern and pitfalls (DESIGN §6): the driver is the only writer of the storage (no SQLite locking
between workers); each config goes to a Ray remote task that returns values or a failure reason;
GPU fractions come from ``ray.cluster_resources()`` (asking for GPUs on a machine without them
leaves tasks pending forever); ``--workers 1`` runs trials in this process without Ray. A trial that
raises, produces NaN/inf or exceeds its time limit is told FAIL with its reason, and the study goes
on. Stale RUNNING trials of an interrupted run are failed and retried once at start-up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import time
import traceback
from typing import Any, Callable, Iterator

import optuna

from search_spaces import ConfigError

from .evaluate import TrialFailed, TrialSpec, evaluate
from .study import (
    Constraint,
    Objective,
    complete_trials,
    recover_stale_trials,
    tell_failure,
    tell_result,
)

__all__ = ["SearchSettings", "run_trials", "default_workers", "make_executor", "terminate", "sigterm_interrupts"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class SearchSettings:
    """What the runner needs besides the study (see ``python -m nas search --help``)."""

    space: str
    bounds: dict[str, Any]
    dataset: str
    data_dir: str
    metrics: list[str]
    early_steps: int = 20
    probe_size: int = 64
    seed: int = 0
    metric_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    trials: int = 20
    workers: int | None = None
    trials_per_gpu: int = 1
    trial_timeout: float | None = None
    max_failures: int | None = None


class TrialTimeout(Exception):
    pass


def _safe_call(fn: Callable[[Any], Any], spec: Any, timeout: float | None = None) -> tuple[str, Any]:
    """Run ``fn(spec)``, turning any error into ``("fail", reason)``; never raises (but on Ctrl-C).

    ``fn`` is any picklable (module-level) function of one picklable argument: :func:`evaluate` for
    the search, :func:`nas.training.train` for validation.
    """
    try:
        return "ok", fn(spec)
    except TrialFailed as exc:
        return "fail", str(exc)
    except ConfigError as exc:
        return "fail", f"invalid config: {exc}"
    except TrialTimeout:
        return "fail", f"exceeded --trial-timeout ({timeout:g} s)"
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a trial must never take the study down
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
        return "fail", f"{type(exc).__name__}: {exc}{where}"


def _safe_evaluate(spec: TrialSpec, timeout: float | None = None) -> tuple[str, Any]:
    """Run :func:`evaluate`, turning any error into ``("fail", reason)``; never raises."""
    return _safe_call(evaluate, spec, timeout)


def default_workers(trials_per_gpu: int = 1) -> int:
    """One per GPU x trials_per_gpu when CUDA is present, else one per CPU core."""
    try:
        import torch

        n_gpu = torch.cuda.device_count()
    except Exception:  # noqa: BLE001
        n_gpu = 0
    if n_gpu:
        return n_gpu * max(1, trials_per_gpu)
    return max(1, os.cpu_count() or 1)


class _InProcess:
    """Runs each job synchronously in this process; the time limit uses SIGALRM.

    ``fn`` is the job function (default :func:`evaluate`); see :func:`make_executor`.
    """

    def __init__(self, timeout: float | None, fn: Callable[[Any], Any] = evaluate) -> None:
        self.timeout = timeout
        self.fn = fn
        self.pending: list[tuple[Any, Any]] = []

    def submit(self, key: Any, spec: Any) -> None:
        self.pending.append((key, spec))

    def wait(self) -> list[tuple[Any, str, Any]]:
        key, spec = self.pending.pop(0)
        use_alarm = bool(self.timeout) and hasattr(signal, "SIGALRM")
        if use_alarm:
            def on_alarm(signum, frame):  # noqa: ARG001
                raise TrialTimeout()

            old = signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, float(self.timeout))
        try:
            status, payload = _safe_call(self.fn, spec, self.timeout)
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
        return [(key, status, payload)]

    def shutdown(self) -> None:
        pass


class _Ray:
    """Ray remote tasks; one CPU (and a GPU fraction when GPUs exist) per job.

    ``fn`` is the job function (default :func:`evaluate`), shipped to the workers by pickling, so it
    must be a module-level function. A job whose spec is a dataclass with a ``threads`` field gets
    ``threads`` = CPU cores / workers on CPU-only machines (1 with GPUs) unless it sets its own.
    """

    def __init__(self, workers: int, trials_per_gpu: int, timeout: float | None,
                 fn: Callable[[Any], Any] = evaluate) -> None:
        import ray

        self.ray = ray
        if not ray.is_initialized():
            ray.init(
                num_cpus=max(workers, 1),
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
                object_store_memory=200 * 1024 * 1024,
                configure_logging=True,
            )
        gpus = ray.cluster_resources().get("GPU", 0)
        self.num_gpus = (1.0 / max(1, trials_per_gpu)) if gpus > 0 else 0
        self.timeout = timeout
        self.threads = 1 if gpus else max(1, (os.cpu_count() or 1) // max(workers, 1))
        self.fn = fn
        self.remote = ray.remote(num_cpus=1, num_gpus=self.num_gpus, max_retries=0)(_safe_call)
        self.refs: dict[Any, tuple[Any, float]] = {}

    def submit(self, key: Any, spec: Any) -> None:
        if dataclasses.is_dataclass(spec) and hasattr(spec, "threads"):
            spec = dataclasses.replace(spec, threads=spec.threads or self.threads)
        self.refs[key] = (self.remote.remote(self.fn, spec, self.timeout), time.monotonic())

    def wait(self) -> list[tuple[Any, str, Any]]:
        ray = self.ray
        by_ref = {ref: key for key, (ref, _) in self.refs.items()}
        ready, _ = ray.wait(list(by_ref), num_returns=1, timeout=0.5)
        out = []
        for ref in ready:
            key = by_ref[ref]
            del self.refs[key]
            try:
                status, payload = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - worker crash, OOM kill, ...
                status, payload = "fail", f"worker error: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            out.append((key, status, payload))
        if self.timeout:
            now = time.monotonic()
            for key, (ref, started) in list(self.refs.items()):
                if now - started > self.timeout:
                    ray.cancel(ref, force=True)
                    del self.refs[key]
                    out.append((key, "fail", f"exceeded --trial-timeout ({self.timeout:g} s)"))
        return out

    def shutdown(self) -> None:
        self.ray.shutdown()


def make_executor(
    workers: int, fn: Callable[[Any], Any] = evaluate, trials_per_gpu: int = 1, timeout: float | None = None
) -> _InProcess | _Ray:
    """The executor the search and the validation share: in process for ``workers == 1``, else Ray.

    Both expose ``submit(key, spec)``, ``wait() -> [(key, "ok" | "fail", result or reason), ...]``
    (at least one item in process; possibly none with Ray, after a short poll) and ``shutdown()``.
    ``fn(spec)`` runs on a worker; any exception becomes ``"fail"`` with a one-line reason.
    """
    if workers == 1:
        return _InProcess(timeout, fn)
    return _Ray(workers, trials_per_gpu, timeout, fn)


def terminate(signum, frame):  # noqa: ARG001
    """SIGTERM handler: raise ``KeyboardInterrupt``, so a kill stops a driver as Ctrl-C does (its
    ``finally`` blocks run: executors shut down, results exported)."""
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block SIGTERM raises ``KeyboardInterrupt`` (:func:`terminate`); the previous handler
    is restored on exit. Used by the search (:func:`run_trials`) and the validation drivers. Call it
    from the main thread (Python installs signal handlers only there)."""
    old = signal.signal(signal.SIGTERM, terminate) if hasattr(signal, "SIGTERM") else None
    try:
        yield
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


def run_trials(
    study: optuna.Study,
    space: Any,
    settings: SearchSettings,
    objectives: list[Objective],
    constraints: list[Constraint],
    on_update: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, int]:
    """Drive the study until it holds ``settings.trials`` COMPLETE trials.

    Rerunning continues up to the target (not N more). Returns counts of this run:
    ``{"completed", "failed", "recovered", "total_complete"}``. ``on_update`` receives a small
    status dict after each finished trial (for a progress bar).
    """
    recovered = recover_stale_trials(study)
    if recovered:
        logger.warning("marked %d interrupted trial(s) as FAIL; their configs are retried once", recovered)
    done = len(complete_trials(study))
    target = int(settings.trials)
    workers = int(settings.workers or default_workers(settings.trials_per_gpu))
    max_failures = settings.max_failures if settings.max_failures is not None else max(10, target)
    stats = {"completed": 0, "failed": 0, "recovered": recovered, "total_complete": done}
    if done >= target:
        return stats
    executor = make_executor(workers, evaluate, settings.trials_per_gpu, settings.trial_timeout)
    in_flight: dict[int, optuna.Trial] = {}
    with sigterm_interrupts():
        try:
            while stats["total_complete"] < target:
                while (
                    len(in_flight) < workers
                    and stats["total_complete"] + len(in_flight) < target
                    and stats["failed"] < max_failures
                ):
                    trial = study.ask()
                    try:
                        config = space.sample(trial)
                    except ConfigError as exc:  # a sampled combination the space rejects
                        tell_failure(study, trial, f"invalid config: {exc}")
                        stats["failed"] += 1
                        continue
                    seed = settings.seed + trial.number
                    trial.set_user_attr("config", config)
                    trial.set_user_attr("seed", seed)
                    spec = TrialSpec(
                        space=settings.space, config=config, dataset=settings.dataset,
                        bounds=settings.bounds, data_dir=settings.data_dir, metrics=list(settings.metrics),
                        early_steps=settings.early_steps, probe_size=settings.probe_size, seed=seed,
                        data_seed=settings.seed, metric_options=dict(settings.metric_options),
                    )
                    executor.submit(trial.number, spec)
                    in_flight[trial.number] = trial
                if not in_flight:
                    break  # too many failures
                for number, status, payload in executor.wait():
                    trial = in_flight.pop(number)
                    if status == "ok":
                        try:
                            tell_result(study, trial, payload, objectives, constraints)
                            stats["completed"] += 1
                            stats["total_complete"] += 1
                        except ValueError as exc:
                            tell_failure(study, trial, str(exc))
                            stats["failed"] += 1
                    else:
                        tell_failure(study, trial, str(payload))
                        stats["failed"] += 1
                        logger.info("trial %d failed: %s", number, payload)
                    if on_update:
                        update = {**stats, "trial": number, "status": status}
                        if status != "ok":
                            update["reason"] = str(payload)
                        on_update(update)
            if stats["failed"] >= max_failures and stats["total_complete"] < target:
                logger.warning(
                    "stopped after %d failed trials in this run (limit %d); see fail_reason in trials.csv",
                    stats["failed"], max_failures,
                )
        finally:
            executor.shutdown()
    return stats
