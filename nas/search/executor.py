"""Where jobs run: in this process, on a local Ray instance or on a Ray cluster, with one submit/wait loop.

An executor runs one picklable function of one picklable spec per job (:func:`run_job`: evaluate a
candidate for a :class:`~nas.evaluate.TrialSpec`, train it for a :class:`~nas.training.TrainSpec`) and
turns any error into a one-line failure reason; :func:`run_jobs` is the loop every driver uses (the
proxy search, the budget search, the validation, the lab): at most ``workers`` jobs in flight, more asked
on demand, each result handed over as it arrives with its wall seconds.

Pattern and pitfalls (DESIGN §6): the driver is the only writer of the storage (no SQLite locking
between workers); GPU fractions come from ``ray.cluster_resources()`` (asking for GPUs on a machine
without them leaves tasks pending forever); ``workers == 1`` runs jobs in this process without Ray. A job
that raises, produces NaN/inf or exceeds its time limit comes back as ``("fail", reason)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import time
import traceback
from typing import Any, Callable, Iterable, Iterator

from search_spaces import ConfigError

from ..evaluate import TrialFailed

__all__ = [
    "run_job", "make_executor", "run_jobs", "default_workers", "cluster_workers", "terminate",
    "sigterm_interrupts", "TrialTimeout",
]

logger = logging.getLogger(__name__)


def run_job(spec: Any) -> Any:
    """One job on a worker: :func:`nas.evaluate.evaluate` for a ``TrialSpec``, :func:`nas.training.train`
    for a ``TrainSpec`` (module level: Ray pickles it)."""
    from ..evaluate import TrialSpec, evaluate
    from ..training import train

    return evaluate(spec) if isinstance(spec, TrialSpec) else train(spec)


class TrialTimeout(Exception):
    pass


def _safe_call(fn: Callable[[Any], Any], spec: Any, timeout: float | None = None) -> tuple[str, Any]:
    """Run ``fn(spec)``, turning any error into ``("fail", reason)``; never raises (but on Ctrl-C).

    ``fn`` is any picklable (module-level) function of one picklable argument: :func:`run_job`.
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

    ``fn`` is the job function (default :func:`run_job`); see :func:`make_executor`.
    """

    def __init__(self, timeout: float | None, fn: Callable[[Any], Any] = run_job) -> None:
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

    ``fn`` is the job function (default :func:`run_job`), shipped to the workers by pickling, so it
    must be a module-level function. A job whose spec is a dataclass with a ``threads`` field gets
    ``threads`` = CPU cores / workers on CPU-only machines (1 with GPUs) unless it sets its own.
    """

    def __init__(self, workers: int, trials_per_gpu: int, timeout: float | None,
                 fn: Callable[[Any], Any] = run_job, address: str | None = None) -> None:
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
    workers: int, fn: Callable[[Any], Any] = run_job, trials_per_gpu: int = 1, timeout: float | None = None,
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
    is restored on exit. Used by every driver. Call it
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


def run_jobs(
    executor: Any,
    workers: int,
    jobs: Iterable[tuple[Any, Any]],
    handle: Callable[[Any, str, Any, float], None],
    more: Callable[[], tuple[Any, Any] | None] | None = None,
    stop_when: Callable[[], bool] | None = None,
    poll: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """The one submit/wait loop: run ``jobs`` ((key, spec) pairs) on ``executor``, at most ``workers`` at
    once; when they run out, ``more()`` gives further pairs on demand (None: no more for now) until
    ``stop_when()`` is true. Each result goes to ``handle(key, status, payload, seconds)`` as it arrives
    (``status`` "ok" or "fail", ``seconds`` the job's wall time); ``poll()`` runs after every wait (stale
    trials, progress). Returns when nothing is in flight and nothing more is given."""
    pending = list(jobs)
    started: dict[Any, float] = {}
    while True:
        while len(started) < workers:
            if pending:
                key, spec = pending.pop(0)
            elif more is not None and not (stop_when and stop_when()):
                item = more()
                if item is None:
                    break
                key, spec = item
            else:
                break
            executor.submit(key, spec)
            started[key] = clock()
        if not started:
            return
        for key, status, payload in executor.wait():
            seconds = clock() - started.pop(key)
            handle(key, status, payload, seconds)
        if poll is not None:
            poll()
