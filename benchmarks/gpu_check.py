"""One prepared command that exercises every CUDA path of gradnas on one GPU and prints one table.

Checks, in order (each one timed, PASS / FAIL with its one-line reason; a failure does not stop the rest):

1. ``device``      -- CUDA visible, the device nas picks by default (``resolve_device(None)``), its name.
2. ``train_amp``   -- one epoch of a ResNet-20-like ``resnet_cifar`` candidate on CIFAR-10-shaped synthetic
                      data (3x32x32, 10 classes) with AMP (``amp="auto"``: bf16 where supported) and
                      channels-last (on by default on CUDA); finite loss, the AMP dtype the history records.
3. ``train_fp32``  -- the same epoch with ``amp="off"``: the AMP speed-up is the ratio of the two.
4. ``metrics``     -- the metric suite's cost on GPU as multiples of one training step (forward + backward +
                      SGD step, batch 64): the budget search's rung-0 set, the full init set, every
                      registered metric in one ``objectives.score`` call.
5. ``ray_trials``  -- a proxy-only search of 8 candidates through local Ray with ``--trials-per-gpu 4``
                      (4 trials share the GPU, ``num_gpus=0.25`` each); every trial COMPLETE on ``cuda``.
6. ``budget``      -- a 3-minute budget search on the same CIFAR-shaped data (GPU defaults: Ray workers =
                      GPUs x trials-per-gpu); it must end inside its budget (+ 60 s grace) with a trained model.
7. ``memory``      -- the in-process GPU memory peak (``torch.cuda.max_memory_allocated``) of checks 2-4.

Usage::

    python benchmarks/gpu_check.py            # on a GPU machine: < 8 minutes, prints the table
    python benchmarks/gpu_check.py --cpu      # the same checks on the CPU with tiny sizes (tests the script)

Without CUDA (and without ``--cpu``) it prints one line and exits 0. Exit status 1 when a check failed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script: the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


@dataclasses.dataclass
class Sizes:
    """How much work each check does: the GPU sizes, or tiny ones for ``--cpu``."""

    shape: tuple[int, int, int] = (3, 32, 32)
    train: int = 10_000
    test: int = 2_000
    bounds: dict[str, Any] = dataclasses.field(default_factory=lambda: {
        "blocks": [1, 3], "width": [8, 32]})
    batch: int = 64
    reps: int = 3
    proxy_trials: int = 8
    trials_per_gpu: int = 4
    budget: str = "3m"
    budget_s: float = 180.0
    grace_s: float = 60.0


CPU_SIZES = Sizes(shape=(3, 16, 16), train=512, test=128, bounds={"blocks": [1, 1], "width": [8, 8], "batch_size": [32, 64]},
                  batch=16, reps=1, proxy_trials=2, trials_per_gpu=1, budget="1m", budget_s=60.0, grace_s=60.0)


@dataclasses.dataclass
class Row:
    check: str
    status: str
    seconds: float
    result: str


def _timed(name: str, fn: Callable[[], str], rows: list[Row]) -> None:
    t0 = time.perf_counter()
    try:
        text, status = fn(), "PASS"
    except Exception as exc:  # noqa: BLE001 - every failure becomes one row, the other checks still run
        lines = [ln for ln in traceback.format_exception_only(type(exc), exc) if ln.strip()]
        text, status = lines[-1].strip()[:160], "FAIL"
    rows.append(Row(name, status, time.perf_counter() - t0, text))
    print(f"  {name:<11} {status}  {rows[-1].seconds:7.1f} s  {text}", flush=True)


class Checks:
    """The checks, sharing one CIFAR-shaped dataset written once under ``folder``."""

    def __init__(self, device: str, sizes: Sizes, folder: Path) -> None:
        from nas.data import load_dataset
        from nas.search.api import register_data
        from search_spaces import get_space

        self.device, self.sizes, self.folder = device, sizes, folder
        data = load_dataset("synthetic", seed=0, synthetic_shape=sizes.shape,
                            synthetic_sizes=(sizes.train, sizes.test), synthetic_classes=10)
        self.data_ref = register_data(data, folder / "data")
        self.space = get_space("resnet_cifar", **sizes.bounds)
        self.config = self.space.default_config()
        self.epoch_s: dict[str, float] = {}

    def device_check(self) -> str:
        from nas.training.recipe import resolve_device

        picked = resolve_device(None)
        if self.device == "cuda":
            if picked.type != "cuda":
                raise RuntimeError(f"nas picks {picked} although CUDA is visible")
            p = torch.cuda.get_device_properties(0)
            return (f"{torch.cuda.device_count()} GPU(s); nas picks {picked}: {p.name}, "
                    f"{p.total_memory / 2**30:.0f} GiB, sm_{p.major}{p.minor}, bf16 {torch.cuda.is_bf16_supported()}, "
                    f"torch {torch.__version__} CUDA {torch.version.cuda}")
        return f"--cpu: nas picks {picked}; torch {torch.__version__}"

    def train(self, amp: str) -> str:
        from nas.training.train import TrainSpec, train

        spec = TrainSpec(space="resnet_cifar", config=self.config, dataset=self.data_ref, epochs=1,
                         bounds=self.sizes.bounds, seed=0, device=self.device, amp=amp)
        h = train(spec)
        loss, acc = h["train_loss"][-1], h["test_acc"][-1]
        if not (loss == loss and abs(loss) < float("inf")) or h.get("diverged"):
            raise RuntimeError(f"training loss not finite ({loss}) with amp={amp}")
        if self.device == "cuda" and amp != "off" and not h.get("amp"):
            raise RuntimeError(f"amp={amp} on CUDA but the history records no AMP dtype ({h.get('amp')!r})")
        self.epoch_s[amp] = h["epoch_time"][-1]
        text = f"1 epoch {h['epoch_time'][-1]:.2f} s, loss {loss:.3f}, test acc {acc:.3f}, amp {h.get('amp')}"
        if amp == "off" and "auto" in self.epoch_s:
            text += f"; AMP speed-up x{self.epoch_s['off'] / max(self.epoch_s['auto'], 1e-9):.2f}"
        return text

    def metrics(self) -> str:
        import torch.nn.functional as F

        import objectives
        from objectives import registry
        from objectives.combine import BUDGET_INIT_FEATURES, INIT_FEATURES, feature_inputs

        dev = torch.device(self.device)
        model = self.space.build(self.config, 10, self.sizes.shape).to(dev)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(self.sizes.batch, *self.sizes.shape, generator=gen).to(dev)
        y = torch.randint(0, 10, (self.sizes.batch,), generator=gen).to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def sync() -> None:
            if dev.type == "cuda":
                torch.cuda.synchronize()

        def median(fn: Callable[[], Any]) -> float:
            fn()  # warm-up (cuDNN autotuning, lazy init)
            times = []
            for _ in range(self.sizes.reps):
                sync()
                t0 = time.perf_counter()
                fn()
                sync()
                times.append(time.perf_counter() - t0)
            return sorted(times)[len(times) // 2]

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

        step_s = median(step)
        known = set(registry.names())
        sets = {"rung-0": [m for m in feature_inputs(BUDGET_INIT_FEATURES) if m in known],
                "init": [m for m in feature_inputs(INIT_FEATURES) if m in known], "all": sorted(known)}
        parts, failed = [], {}
        for name, metrics in sets.items():
            scores: dict[str, Any] = {}

            def run(metrics=metrics, scores=scores) -> None:
                scores.clear()
                scores.update(objectives.score(model, x, y, metrics=metrics, seed=0, on_error="nan"))
            parts.append(f"{name} x{median(run) / step_s:.1f}")
            bad = [m for m in metrics if not (isinstance(scores.get(m), float) and scores[m] == scores[m])
                   and m not in getattr(scores, "errors", {})]
            failed.update({m: name for m in bad})
        if failed:
            raise RuntimeError(f"metrics without a value and without a reason: {sorted(failed)}")
        return f"step {step_s * 1e3:.1f} ms (batch {self.sizes.batch}); cost in steps: " + ", ".join(parts)

    def _search(self, study: str, **options: Any):
        import nas

        return nas.search(space="resnet_cifar", dataset=self.data_ref, study=study, runs_dir=str(self.folder / "runs"),
                          bounds=self.sizes.bounds, seed=0, **options)

    def ray_trials(self) -> str:
        import optuna

        n, per = self.sizes.proxy_trials, self.sizes.trials_per_gpu
        workers = per * (torch.cuda.device_count() if self.device == "cuda" else 1)
        res = self._search("gpu-check-ray", trials=n, workers=max(2, workers), trials_per_gpu=per,
                           early_steps=10)
        trials = res.study.get_trials(deepcopy=False)
        done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        devices = sorted({str(t.user_attrs.get("device")) for t in done})
        if len(done) < n:
            raise RuntimeError(f"{len(done)} of {n} trials COMPLETE ({[t.state.name for t in trials]})")
        if self.device == "cuda" and devices != ["cuda"]:
            raise RuntimeError(f"trials ran on {devices}, expected cuda")
        return f"{len(done)} trials COMPLETE through Ray, {max(2, workers)} workers, {per} per GPU, on {devices}"

    def budget(self) -> str:
        t0 = time.perf_counter()
        res = self._search("gpu-check-budget", budget=self.sizes.budget, epochs=3)
        wall = time.perf_counter() - t0
        if res.best_model is None or res.test_acc is None:
            raise RuntimeError(f"the budget search ended without a trained model after {wall:.0f} s")
        if wall > self.sizes.budget_s + self.sizes.grace_s:
            raise RuntimeError(f"took {wall:.0f} s for a {self.sizes.budget} budget")
        st = res.stats or {}
        return (f"{wall:.0f} s of {self.sizes.budget_s:.0f}; candidates per rung {st.get('rungs')}, "
                f"best trained test acc {res.test_acc:.3f}")

    def memory(self) -> str:
        if self.device != "cuda":
            return "not measured on the CPU"
        peak = torch.cuda.max_memory_allocated() / 2**20
        total = torch.cuda.get_device_properties(0).total_memory / 2**20
        return f"peak allocated {peak:.0f} MiB in process ({100 * peak / total:.1f} % of the GPU)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="run the checks on the CPU with tiny sizes (tests the script)")
    ap.add_argument("--keep", metavar="DIR", help="write the data and studies here (default: a temporary folder)")
    args = ap.parse_args(argv)
    if not args.cpu and not torch.cuda.is_available():
        print(f"gpu_check: skipped, no CUDA device visible (torch {torch.__version__}, "
              f"built with CUDA {torch.version.cuda}); run on a GPU machine, or --cpu to test the script")
        return 0
    device, sizes = ("cpu", CPU_SIZES) if args.cpu else ("cuda", Sizes())
    t0 = time.perf_counter()
    rows: list[Row] = []
    with (contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory(prefix="gpu_check_")) as tmp:
        folder = Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"gpu_check on {device}: data and studies under {folder}", flush=True)
        checks = Checks(device, sizes, folder)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for name, fn in [("device", checks.device_check), ("train_amp", lambda: checks.train("auto")),
                         ("train_fp32", lambda: checks.train("off")), ("metrics", checks.metrics),
                         ("memory", checks.memory), ("ray_trials", checks.ray_trials), ("budget", checks.budget)]:
            _timed(name, fn, rows)
    failed = [r.check for r in rows if r.status != "PASS"]
    width = max(len(r.result) for r in rows)
    print(f"\n| check | status | seconds | result |\n|---|---|---:|{'-' * min(width, 3)}|")
    for r in rows:
        print(f"| {r.check} | {r.status} | {r.seconds:.1f} | {r.result} |")
    print(f"\ngpu_check: {len(rows) - len(failed)}/{len(rows)} passed in {time.perf_counter() - t0:.0f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    sys.exit(main())
