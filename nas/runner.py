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
from .search.ownership import HEARTBEAT_INTERVAL_S, STALE_GRACE_S, Driver, Heartbeat, recover_stale_trials, trial_seed
from .study import Constraint, Objective, complete_trials, tell_failure, tell_result

__all__ = ["SearchSettings", "run_trials", "default_workers", "make_executor", "terminate", "sigterm_interrupts"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class SearchSettings:
    """What the runner needs besides the study (see ``python -m nas search --help``).

    ``threads`` is the torch thread count of every trial, whatever runs it (in process, a local Ray
    worker or a node of a cluster), so a trial's values do not depend on the worker path; it is stored
    in the study's settings. ``ray_address`` joins an existing Ray cluster (``auto``: the local
    ``ray start`` one; default: ``$RAY_ADDRESS``, else a private local Ray instance). Trials are owned by
    this driver through heartbeats every ``heartbeat_interval`` s; another driver takes one for stale
    only after ``stale_grace`` s of silence (or when its driver's process on the same host has exited).
    """

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
    threads: int = 1
    ray_address: str | None = None
    heartbeat_interval: float = HEARTBEAT_INTERVAL_S
    stale_grace: float = STALE_GRACE_S


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


def _remote_call(fn: Callable[[Any], Any], spec: Any, timeout: float | None = None) -> tuple[str, Any]:
    """:func:`_safe_call` on a Ray worker; a dict result also says which node and worker process ran it."""
    status, payload = _safe_call(fn, spec, timeout)
    if status == "ok" and isinstance(payload, dict):
        import ray

        ctx = ray.get_runtime_context()
        payload = {**payload, "node": ctx.get_node_id(), "worker_pid": os.getpid()}
    return status, payload


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
                 fn: Callable[[Any], Any] = evaluate, address: str | None = None) -> None:
        import ray

        self.ray = ray
        self.joined = False
        if not ray.is_initialized():
            address = address or os.environ.get("RAY_ADDRESS") or None
            common = dict(logging_level=logging.WARNING, log_to_driver=False, configure_logging=True)
            if address:  # an existing cluster: its resources are its own
                ray.init(address=address, **common)
                self.joined = True
            else:  # "local": a new instance; without an address Ray joins the last cluster started here
                ray.init(address="local", num_cpus=max(workers, 1), include_dashboard=False,
                         object_store_memory=200 * 1024 * 1024, **common)
        gpus = ray.cluster_resources().get("GPU", 0)
        self.num_gpus = (1.0 / max(1, trials_per_gpu)) if gpus > 0 else 0
        self.timeout = timeout
        self.threads = 1 if gpus else max(1, (os.cpu_count() or 1) // max(workers, 1))
        self.fn = fn
        # max_calls=0: a worker process is reused for every trial (also with GPUs, where Ray's default
        # is one call per process), so its dataset cache (nas.data.load_dataset) is loaded once per worker
        self.remote = ray.remote(num_cpus=1, num_gpus=self.num_gpus, max_retries=0, max_calls=0)(_remote_call)
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
                status, payload = "fail", (f"worker error (the worker process or its node died): "
                                           f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
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
        self.ray.shutdown()  # joined cluster: disconnects this driver only; the cluster keeps running


def make_executor(
    workers: int, fn: Callable[[Any], Any] = evaluate, trials_per_gpu: int = 1, timeout: float | None = None,
    ray_address: str | None = None,
) -> _InProcess | _Ray:
    """The executor the search and the validation share: in process for ``workers == 1``, else Ray.

    Both expose ``submit(key, spec)``, ``wait() -> [(key, "ok" | "fail", result or reason), ...]``
    (at least one item in process; possibly none with Ray, after a short poll) and ``shutdown()``.
    ``fn(spec)`` runs on a worker; any exception becomes ``"fail"`` with a one-line reason.
    """
    if workers == 1 and not ray_address:
        return _InProcess(timeout, fn)
    return _Ray(workers, trials_per_gpu, timeout, fn, ray_address)


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


def cluster_workers(executor: Any, trials_per_gpu: int = 1) -> int | None:
    """Trials a joined Ray cluster runs at once: GPUs x trials_per_gpu, else its CPUs (None in process)."""
    if not isinstance(executor, _Ray):
        return None
    res = executor.ray.cluster_resources()
    if res.get("GPU", 0) > 0:
        return max(1, int(res["GPU"] * max(1, trials_per_gpu)))
    return max(1, int(res.get("CPU", 1)))


def _surplus(study: optuna.Study, number: int, target: int) -> bool:
    """Whether trial ``number`` is beyond the target: ``target`` trials numbered below it are already
    complete or running (other drivers on the same study asked them first)."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)
    return sum(1 for t in study.get_trials(deepcopy=False, states=states) if t.number < number) >= target


def _give_back(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    """Close a trial this driver will not run (PRUNED, ``pruned_reason``); an enqueued retry it had
    popped is enqueued again, so no other driver loses it."""
    if trial.user_attrs.get("retry_of_trial") is not None:
        study.enqueue_trial(trial.params, user_attrs={k: trial.user_attrs[k] for k in ("retry_of_trial", "seed")
                                                      if k in trial.user_attrs})
    trial.set_user_attr("pruned_reason", reason)
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)


def run_trials(
    study: optuna.Study,
    space: Any,
    settings: SearchSettings,
    objectives: list[Objective],
    constraints: list[Constraint],
    on_update: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, int]:
    """Drive the study until it holds ``settings.trials`` COMPLETE trials.

    Rerunning continues up to the target (not N more). Several drivers may share the study (same
    storage, e.g. PostgreSQL, one per node): each owns its running trials through heartbeats
    (:class:`~nas.ownership.Heartbeat`), fails another's only when that driver is gone
    (:func:`~nas.ownership.recover_stale_trials`, checked at start and every heartbeat interval), asks a
    new trial only while fewer than the target are complete or running, and gives back (PRUNED) a
    trial that turns out to be beyond the target. A retry keeps its trial's config and seed.

    Returns counts of this run: ``{"completed", "failed", "recovered", "total_complete"}``.
    ``on_update`` receives a small status dict after each finished trial (for a progress bar).
    """
    driver = Driver.new()
    grace = settings.stale_grace
    recovered = recover_stale_trials(study, driver, grace)
    if recovered:
        logger.warning("marked %d interrupted trial(s) as FAIL; their configs are retried once", recovered)
    done = len(complete_trials(study))
    target = int(settings.trials)
    stats = {"completed": 0, "failed": 0, "recovered": recovered, "total_complete": done}
    if done >= target:
        return stats
    workers = settings.workers
    executor = make_executor(int(workers or default_workers(settings.trials_per_gpu)), evaluate,
                             settings.trials_per_gpu, settings.trial_timeout, settings.ray_address)
    if workers is None:
        workers = cluster_workers(executor, settings.trials_per_gpu) or default_workers(settings.trials_per_gpu)
    workers = int(workers)
    max_failures = settings.max_failures if settings.max_failures is not None else max(10, target)
    in_flight: dict[int, optuna.Trial] = {}
    active_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)
    last_check = time.monotonic()
    with sigterm_interrupts(), Heartbeat(study, driver, settings.heartbeat_interval) as heartbeat:
        try:
            while True:
                stats["total_complete"] = len(complete_trials(study))
                if stats["total_complete"] >= target:
                    break
                if time.monotonic() - last_check > settings.heartbeat_interval:
                    stats["recovered"] += recover_stale_trials(study, driver, grace)
                    last_check = time.monotonic()
                while len(in_flight) < workers and stats["failed"] < max_failures:
                    if len(study.get_trials(deepcopy=False, states=active_states)) >= target:
                        break
                    trial = study.ask()
                    heartbeat.claim(trial)
                    if _surplus(study, trial.number, target):
                        heartbeat.release(trial.number)
                        _give_back(study, trial, "surplus: the study already had its target of trials "
                                                 "complete or running (another driver asked them first)")
                        break
                    try:
                        config = space.sample(trial)
                    except ConfigError as exc:  # a sampled combination the space rejects
                        heartbeat.release(trial.number)
                        tell_failure(study, trial, f"invalid config: {exc}")
                        stats["failed"] += 1
                        continue
                    seed = trial_seed(trial, settings.seed)
                    trial.set_user_attr("config", config)
                    trial.set_user_attr("seed", seed)
                    trial.set_user_attr("threads", settings.threads)
                    spec = TrialSpec(
                        space=settings.space, config=config, dataset=settings.dataset,
                        bounds=settings.bounds, data_dir=settings.data_dir, metrics=list(settings.metrics),
                        early_steps=settings.early_steps, probe_size=settings.probe_size, seed=seed,
                        data_seed=settings.seed, metric_options=dict(settings.metric_options),
                        threads=settings.threads,
                    )
                    executor.submit(trial.number, spec)
                    in_flight[trial.number] = trial
                if not in_flight:
                    if stats["failed"] >= max_failures:
                        break  # too many failures
                    # other drivers hold the remaining trials: wait for them (or for them to go stale)
                    time.sleep(min(1.0, settings.heartbeat_interval))
                    continue
                for number, status, payload in executor.wait():
                    trial = in_flight.pop(number)
                    heartbeat.release(number)
                    try:
                        if status == "ok":
                            try:
                                tell_result(study, trial, payload, objectives, constraints)
                                stats["completed"] += 1
                            except ValueError as exc:
                                tell_failure(study, trial, str(exc))
                                stats["failed"] += 1
                        else:
                            tell_failure(study, trial, str(payload))
                            stats["failed"] += 1
                            logger.info("trial %d failed: %s", number, payload)
                    except optuna.exceptions.UpdateFinishedTrialError:
                        # another driver took it for stale (this driver was silent past the grace
                        # period); its retry runs the same config and seed
                        logger.warning("trial %d was failed as stale by another driver; its retry reruns it", number)
                        continue
                    if on_update:
                        update = {**stats, "total_complete": len(complete_trials(study)), "trial": number,
                                  "status": status}
                        if status != "ok":
                            update["reason"] = str(payload)
                        on_update(update)
            stats["total_complete"] = len(complete_trials(study))
            if stats["failed"] >= max_failures and stats["total_complete"] < target:
                logger.warning(
                    "stopped after %d failed trials in this run (limit %d); see fail_reason in trials.csv",
                    stats["failed"], max_failures,
                )
        finally:
            executor.shutdown()
    return stats
