"""A discrete-event stand-in for the executors: jobs take simulated seconds on a fake clock.

``FakeCluster(workers)`` runs each submitted job instantly, computes its result from the config with
:func:`fake_result` (a deterministic "quality" of the config decides its metric values, its early loss and
its accuracy curve) and finishes it ``cost(spec)`` simulated seconds after it started; ``wait()`` returns
the job that finishes first and moves the clock to that moment. The budget search's planning and
promotion logic then runs in milliseconds, with exact, machine-independent times.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

#: Simulated seconds: a rung-0 scoring, the early steps, one training epoch.
COST_INIT, COST_EARLY, COST_EPOCH = 1.0, 4.0, 3.0


def quality(config: dict[str, Any]) -> float:
    """A deterministic score of a config in [0, 1]: best near lr 0.05 and a wide, shallow net."""
    lr = float(config.get("lr", 0.05))
    q = math.exp(-abs(math.log(lr / 0.05)) / 2)
    return 0.6 * q + 0.4 * float(config.get("width", 8)) / 16.0 * (1.0 if config.get("skip", True) else 0.7)


def _is_train(spec: Any) -> bool:
    return hasattr(spec, "epochs") and hasattr(spec, "checkpoint")


def fake_result(spec: Any) -> dict[str, Any]:
    """What :func:`nas.evaluate.evaluate` or :func:`nas.training.train` would return, from the config."""
    q = quality(spec.config)
    if _is_train(spec):
        n = spec.stop_after if spec.stop_after is not None else spec.epochs
        accs = [round(q * (0.5 + 0.5 * (e + 1) / spec.epochs), 6) for e in range(n)]
        return {"test_acc": accs, "train_loss": [2.3 * (1 - a) for a in accs], "test_loss": [2.3 * (1 - a) for a in accs],
                "epoch_time": [COST_EPOCH] * n, "epochs": spec.epochs, "num_classes": 10, "diverged": False,
                "resumed_from": 0, "epochs_trained": n, "wall_time": COST_EPOCH * n}
    if not spec.score_init:  # the early rung
        return {"loss_curve": [2.3, 2.3 - q], "loss_early": 2.3 - q, "loss_drop": q / 2.3,
                "train_loss_first": 2.3, "train_loss_last": 2.3 - q, "train_kappa_w": 1.0,
                "train_loss_smooth_min": 2.3 - q}
    gwr = 0.01 + 0.02 * q
    return {"az_expressivity": 10.0 * q, "grad_weight_ratio": gwr, "relative_step": float(spec.config["lr"]) * gwr,
            "loss_init": 2.3, "params": 1000, "time_step": COST_EPOCH / 100, "time_build": 0.0,
            "time_total": COST_INIT}


class FakeCluster:
    """The executor interface (``submit``, ``wait``, ``shutdown``) on a simulated clock (``now()``)."""

    def __init__(self, workers: int = 1, fail: set[int] | None = None) -> None:
        self.workers = workers
        self.t = 0.0
        self.heap: list[tuple[float, int, Any, Any]] = []
        self.seq = 0
        self.fail = fail or set()
        self.log: list[tuple[Any, str]] = []  # (key, kind) of every job run
        self.rungs: list[tuple[Any, str]] = []  # (key, rung) of every job run: init, early, short, full
        self.busy = 0.0  # worker-seconds of the jobs submitted
        self.trained: dict[Any, int] = {}  # epochs each candidate has trained (its checkpoint)

    def cost(self, key: Any, spec: Any) -> float:
        if _is_train(spec):
            target = spec.stop_after if spec.stop_after is not None else spec.epochs
            done = self.trained.get(key, 0) if spec.epochs == self.trained.get((key, "schedule")) else 0
            self.trained[key], self.trained[(key, "schedule")] = target, spec.epochs
            return COST_EPOCH * max(0, target - done)
        return COST_EARLY if not spec.score_init else COST_INIT

    def now(self) -> float:
        return self.t

    def submit(self, key: Any, spec: Any) -> None:
        self.seq += 1
        kind = "train" if _is_train(spec) else ("early" if not spec.score_init else "init")
        self.log.append((key, kind))
        self.rungs.append((key, kind if kind != "train" else ("short" if spec.stop_after is not None else "full")))
        cost = self.cost(key, spec)
        self.busy += cost
        heapq.heappush(self.heap, (self.t + cost, self.seq, key, spec))

    def wait(self) -> list[tuple[Any, str, Any]]:
        done, _, key, spec = heapq.heappop(self.heap)
        self.t = max(self.t, done)
        if key in self.fail:
            return [(key, "fail", "simulated failure")]
        return [(key, "ok", fake_result(spec))]

    def shutdown(self) -> None:
        pass
