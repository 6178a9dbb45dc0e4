"""Cost of every metric as a multiple of one plain training step, measured side by side in one run.

Network: resnet_cifar with 3 blocks per stage, width 16, BatchNorm, ReLU, skips (ResNet-20,
~0.27 M parameters), CIFAR-shaped batch of 64 (random data: cost does not depend on the values).

Prints, for each metric: median seconds of ``objectives.score(model, x, y, metrics=[name])`` (a
fresh probe each time, so shared work is counted for every metric) and its ratio to a training step
(forward + backward + SGD step); then the whole thesis suite over one shared probe, every registered
metric, and the in-training kappa_W overhead per step. Peak memory is measured in child processes
(peak RSS above the baseline on CPU, ``max_memory_allocated`` on CUDA), relative to a training step.

Usage::

    python benchmarks/metric_cost.py [--device cpu|cuda] [--batch 64] [--reps 3] [--bn-mode frozen]
    python benchmarks/metric_cost.py --threads 1 --write-costs objectives/data/metric_costs.json
    python benchmarks/metric_cost.py --threads 1 --clock cpu --no-memory   # steadier on a loaded machine

``--write-costs PATH`` also writes each metric's "x step" ratio as the metric costs the proxy lab caps a
budgeted search's rung 0 with (``nas.lab.data.metric_costs_document``; entries of the file it replaces
that this script does not time, such as ``loss_init``, are kept).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import threading  # noqa: F401  (used by _RssSampler)
import statistics
import time

import torch
import torch.nn.functional as F

if __package__ in (None, ""):  # run as a script: the repository on the path
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import objectives  # noqa: E402
from objectives import InTrainingStepConsistency, registry
from search_spaces import get_space

RESNET20 = {"blocks": 3, "width": 16, "skip": True, "norm": "bn", "activation": "relu"}


def setup(device: str, batch: int):
    torch.manual_seed(0)
    model = get_space("resnet_cifar").build(RESNET20, 10, (3, 32, 32), seed=0).to(device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    return model, x, y


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


#: The clock of :func:`timed`: ``time.perf_counter`` (wall) or ``time.process_time`` (``--clock cpu``).
CLOCK = {"fn": time.perf_counter}


def timed(fn, device: str, reps: int) -> float:
    clock = CLOCK["fn"]
    fn()  # warm-up (vmap tracing, allocator)
    sync(device)
    times = []
    for _ in range(reps):
        t = clock()
        fn()
        sync(device)
        times.append(clock() - t)
    return statistics.median(times)


def train_step_fn(model, x, y, tracker=None):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        if tracker is not None:
            tracker.update()
        opt.step()

    return step


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class _RssSampler:
    """Samples the process RSS every millisecond in a thread; ``peak`` is the maximum seen."""

    def __init__(self) -> None:
        self.peak = _rss_now_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_now_mb())
            time.sleep(0.001)

    def __enter__(self) -> "_RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_now_mb())


def _peak_child(what: str, device: str, batch: int, bn_mode: str, q, threads: int) -> None:
    torch.set_num_threads(threads)
    model, x, y = setup(device, batch)
    if what == "step":
        fn = train_step_fn(model, x, y)
    else:
        metrics = list(objectives.DEFAULT_METRICS) if what == "suite" else [what]
        def fn():
            objectives.score(model, x, y, metrics=metrics, bn_mode=bn_mode)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        q.put((torch.cuda.max_memory_allocated() - base) / 2**20)
        return
    import gc

    gc.collect()
    base = _rss_now_mb()
    with _RssSampler() as s:
        fn()
    q.put(s.peak - base)


def peak_mb(what: str, device: str, batch: int, bn_mode: str) -> float:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_peak_child, args=(what, device, batch, bn_mode, q, torch.get_num_threads()))
    p.start()
    value = q.get()
    p.join()
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--bn-mode", default="frozen", choices=["frozen", "contribution"])
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    ap.add_argument("--sets-only", action="store_true",
                    help="time only the metric sets (thesis suite, budget rung 0, proxy-only init set, the rung-0 "
                         "pool of a calibrated search): quick repeats, e.g. alternating with an older checkout's "
                         "objectives")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall: elapsed time (default); cpu: this process's CPU time (time.process_time), steadier "
                         "on a machine other jobs load (use with --threads 1 on CPU; not for CUDA)")
    ap.add_argument("--write-costs", metavar="PATH", default=None,
                    help="also write each metric's cost in training steps as JSON (objectives/data/metric_costs.json)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    if args.clock == "cpu":
        if dev.startswith("cuda"):
            ap.error("--clock cpu measures CPU time: use it with --device cpu")
        CLOCK["fn"] = time.process_time
    model, x, y = setup(dev, args.batch)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"ResNet-20 ({n_params:,} parameters), batch {args.batch}, device {dev}, bn_mode {args.bn_mode}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock, objectives from "
          f"{objectives.__file__.rsplit('/', 2)[0]}")
    step = timed(train_step_fn(model, x, y), dev, max(args.reps, 5))
    print(f"training step: {step * 1e3:.1f} ms (= 1.00x)\n")
    print(f"{'metric':18s} {'seconds':>9s} {'x step':>8s}   kind")
    ratios: dict[str, float] = {}
    for name in ([] if args.sets_only else registry.names()):
        e = registry.get(name)
        t = timed(lambda: objectives.score(model, x, y, metrics=[name], bn_mode=args.bn_mode)
                  if "probe" in e.options else objectives.score(model, x, y, metrics=[name]), dev, args.reps)
        kind = {"zero_cost": "peer"}.get(e.family, e.family)
        print(f"{name:18s} {t:9.3f} {t / step:8.2f}   {kind}")
        ratios[name] = t / step
    suite = timed(lambda: objectives.score(model, x, y, metrics=list(objectives.DEFAULT_METRICS),
                                           bn_mode=args.bn_mode), dev, args.reps)
    print(f"\nthesis suite ({len(objectives.DEFAULT_METRICS)} metrics, one shared probe): {suite:.3f} s = "
          f"{suite / step:.2f}x a training step (target <= 6x)")
    from nas.lab.calibration import POOL_METRICS
    from nas.study import budget_metrics, combined_metrics

    for label, names in (("budget search rung 0 (BUDGET_INIT_FEATURES' metrics)", budget_metrics()),
                         ("proxy-only search (the combined score's init metrics)", combined_metrics()),
                         ("rung-0 pool (nas.lab.calibration.POOL_METRICS and params)", [*POOL_METRICS, "params"])):
        r0 = timed(lambda names=names: objectives.score(model, x, y, metrics=names, bn_mode=args.bn_mode), dev,
                   args.reps)
        print(f"{label}: {', '.join(names)}; one shared probe: {r0:.3f} s = {r0 / step:.2f}x a training step"
              + (" (target <= 2x)" if "rung 0" in label else " (target <= 2.5x)" if "rung-0" in label else ""))
    if args.sets_only:
        return
    everything = timed(lambda: objectives.score(model, x, y, metrics=registry.names()), dev, 1)
    print(f"every registered metric ({len(registry.names())}): {everything:.3f} s = {everything / step:.2f}x")
    # the tracker's own cost, timed call by call inside real training steps (robust to machine noise)
    tracker = InTrainingStepConsistency(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    step_times, update_times = [], []
    clock = CLOCK["fn"]
    for _ in range(max(args.reps, 10)):
        t0 = clock()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        sync(dev)
        t1 = clock()
        tracker.update()
        sync(dev)
        t2 = clock()
        opt.step()
        sync(dev)
        step_times.append(clock() - t0 - (t2 - t1))
        update_times.append(t2 - t1)
    upd, plain = statistics.median(update_times), statistics.median(step_times)
    print(f"in-training kappa_W: tracker.update() {upd * 1e3:.2f} ms per step vs a {plain * 1e3:.1f} ms step "
          f"(+{upd / plain * 100:.1f} %, target <= +5 %)")
    if not args.no_memory:
        step_mb = peak_mb("step", dev, args.batch, args.bn_mode)
        suite_mb = peak_mb("suite", dev, args.batch, args.bn_mode)
        print(f"peak memory above baseline: training step {step_mb:.0f} MiB, thesis suite {suite_mb:.0f} MiB "
              f"({suite_mb / max(step_mb, 1e-9):.2f}x)")
    if args.write_costs:
        write_costs(args.write_costs, ratios, f"ResNet-20, batch {args.batch}, device {dev}, bn_mode {args.bn_mode}, "
                    f"{torch.get_num_threads()} threads, {args.clock} clock")


def write_costs(path: str, ratios: dict[str, float], setting: str) -> None:
    """Write the measured ratios as the metric-costs package data (``nas.lab.data.metric_costs_document``)."""
    import datetime
    import sys
    from pathlib import Path

    from nas.lab.data import dumps, metric_costs_document, read_document

    previous = read_document(path) if Path(path).is_file() else None
    command = "python benchmarks/metric_cost.py " + " ".join(sys.argv[1:])
    doc = metric_costs_document(ratios, command, previous, f"{datetime.date.today().isoformat()}: {setting}")
    Path(path).write_text(dumps(doc) + "\n", encoding="utf-8")
    print(f"metric costs written to {path}")


if __name__ == "__main__":
    main()
