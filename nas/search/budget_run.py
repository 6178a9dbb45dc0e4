"""One budget search's working state: its candidates' values, job times, costs, promotion scores and the
best model it saves. The driver that climbs the rungs is :func:`nas.search.budget.run_budget`."""

from __future__ import annotations

import datetime
import json
import math
from typing import Any, Callable

import numpy as np

from .plan import RUNGS, BudgetError, Plan, plan
from . import keys
from .budget_state import BudgetState, save_state
from .lifecycle import Lifecycle, train_spec, trial_spec
from .ranking import cohort_scores
from .rung0 import finite, rung0_scores, study_labels

__all__ = ["BudgetRun", "EPOCH_OVERHEAD", "rung0_scores", "study_labels"]

#: Planning margin on a training epoch estimated from the timed steps (evaluation, batch assembly).
EPOCH_OVERHEAD = 1.25


def _median(values, default: float) -> float:
    vals = [float(v) for v in values if finite(v)]
    return float(np.median(vals)) if vals else default


def final_acc(history: dict) -> float:
    """The finalists' ranking measure, higher is better: the final test accuracy; for a regression loss
    (no classes) the negated final test loss."""
    if history.get("task") == "regression":
        v = history.get("final_test_loss") if history.get("diverged") else (history.get("test_loss") or [None])[-1]
        return -float(v) if finite(v) else -math.inf
    if history.get("diverged"):
        v = history.get("final_test_acc")
    else:
        accs = [a for a in history.get("test_acc", []) if a is not None]
        v = accs[-1] if accs else None
    return float(v) if finite(v) else 0.0


class BudgetRun:
    """State of one budgeted run: the lifecycle of its trials, every value stored so far (number ->
    values), each rung's job seconds, the plan and the persisted :class:`BudgetState`."""

    def __init__(self, life: Lifecycle, settings: Any, folder: Any, input_shape, train_size: int,
                 workers: int, state: BudgetState, on_event: Callable[[dict], None] | None,
                 clock: Callable[[], float], t0: float | None = None) -> None:
        self.life, self.study, self.settings, self.folder = life, life.study, settings, folder
        self.input_shape, self.train_size, self.workers = tuple(input_shape), int(train_size), int(workers)
        self.state = state
        self.on_event = on_event or (lambda event: None)
        self.clock = clock
        self.t0 = clock() if t0 is None else t0
        self.spent_before = state.spent
        self.deadline = self.t0 + max(0.0, state.budget - state.spent)
        self.values: dict[int, dict] = {}
        self.seconds: dict[int, dict[int, float]] = {int(k): {int(n): s for n, s in v.items()}
                                                     for k, v in state.seconds.items()}
        self.stats: dict[str, Any] = {"failed": 0, "completed": 0, "rungs": {}, "plan": state.to_plan()}
        self.rung = state.rung
        self.full_epochs = int(state.full_epochs)
        self.plan: Plan | None = state.to_plan()
        self.ladder: Any = None  # the async climb's Ladder (saved with the state)
        self._calibration: dict | None = None  # the rung-0 calibration last stored on the study

    # ---------------------------------------------------------------- time and persistence
    def left(self) -> float:
        return self.deadline - self.clock()

    def elapsed(self) -> float:
        return self.spent_before + self.clock() - self.t0

    def save(self) -> None:
        st = self.state
        st.spent, st.rung, st.full_epochs = self.elapsed(), self.rung, self.full_epochs
        st.plan = BudgetState.plan_dict(self.plan)
        if self.ladder is not None:
            st.ladder = self.ladder.to_dict()
        if self.rung == 0 or not st.estimates:
            step, build, batch = self.estimates()
            st.estimates = {"step": step, "build": build, "batch": batch}
        st.seconds = {str(k): {str(n): s for n, s in v.items()} for k, v in self.seconds.items()}
        save_state(self.study, st)

    def event(self, kind: str, **data) -> None:
        self.on_event({"kind": kind, "rung": RUNGS[self.rung], "elapsed": self.elapsed(),
                       "budget": self.state.budget, **data})

    # ---------------------------------------------------------------- candidates
    def ask(self):
        """A new rung-0 candidate and its spec (None when the space keeps rejecting samples)."""
        cand = self.life.ask(attrs={keys.RUNG: RUNGS[0]})
        if cand is None:
            return None
        self.values[cand.number] = {keys.CONFIG: cand.config, keys.SEED: cand.seed}
        self.state.asked += 1
        s = self.settings
        return cand.number, trial_spec(s, cand.config, cand.seed, early_steps=0, time_steps=s.time_steps)

    def adopt(self, number: int) -> None:
        """Continue a candidate of an interrupted run: claim its trial and read back its values."""
        cand = self.life.adopt(number)
        frozen = self.study._storage.get_trial(cand.trial._trial_id)
        self.values[number] = {**frozen.user_attrs, keys.CONFIG: cand.config, keys.SEED: cand.seed}

    def early_spec(self, number: int):
        v = self.values[number]
        return trial_spec(self.settings, v[keys.CONFIG], v[keys.SEED], metrics=[], score_init=False, time_steps=0,
                          metric_options={})

    def train_spec(self, number: int, stop_after: int | None):
        s, v = self.settings, self.values[number]
        return train_spec({"space": s.space, "dataset": s.dataset, "bounds": s.bounds, "seed": s.seed},
                          v[keys.CONFIG], v[keys.SEED], self.full_epochs, self.folder.checkpoint(number),
                          data_dir=s.data_dir, amp=s.amp, trial=number, stop_after=stop_after, threads=s.threads)

    def store(self, number: int, result: dict) -> None:
        self.values[number].update(result)
        self.life.store(number, result)

    def store_training(self, number: int, history: dict, rung: int) -> None:
        from ..training import summarize

        summary = summarize(history, "budget search")
        trial = self.life.running[number].trial
        for epoch, acc in enumerate(history.get("test_acc", []), start=1):
            if finite(acc):  # the dashboard's intermediate values (Trial.report refuses multi-objective studies)
                self.study._storage.set_trial_intermediate_value(trial._trial_id, epoch, float(acc))
        if rung == 3:
            self.study.set_user_attr(keys.validation_key(number), summary)  # validate/report see it as validated
        self.store(number, {**summary, "final_test_acc": final_acc(history)})

    def mark_done(self, number: int) -> None:
        """The candidate finished the current rung's job: recorded on its trial and in the state."""
        self.life.set(number, keys.RUNG_DONE, self.rung)
        if self.rung == 0:
            self.state.cohort.append(number)
        else:
            self.state.done.append(number)
        self.save()

    def fail(self, number: int, reason: str) -> None:
        self.life.set(number, keys.RUNG, RUNGS[self.rung])
        self.life.fail(number, f"{RUNGS[self.rung]} rung: {reason}")
        self.values.pop(number, None)
        self.stats["failed"] += 1
        self.event("fail", trial=number, reason=reason)

    def finish(self, numbers, rung: int | None = None) -> None:
        """Tell these trials COMPLETE with their objective values; they climb no further (the last rung they
        reached: ``rung``, default the current one)."""
        for n in list(numbers):
            if n not in self.life.running:
                continue
            self.life.set(n, keys.RUNG, RUNGS[self.rung if rung is None else rung])
            if self.life.complete(n, self.values[n], store=False):
                self.stats["completed"] += 1

    # ---------------------------------------------------------------- costs and scores
    def estimates(self) -> tuple[float, float, float]:
        """Medians over the rung-0 candidates of a training step's seconds, a build's seconds and the batch
        size. Kept in the state once rung 0 is over: a resumed run holds only the candidates still climbing."""
        if self.rung > 0 and self.state.estimates:
            e = self.state.estimates
            return e["step"], e["build"], e["batch"]
        vals = list(self.values.values())
        step = _median([v.get("time_step") for v in vals], 0.05)
        build = _median([v.get("time_build") for v in vals], 1.0)
        batch = _median([v[keys.CONFIG].get("batch_size") for v in vals if isinstance(v.get(keys.CONFIG), dict)], 128.0)
        return step, build, batch

    def costs(self) -> tuple[float, float, float, float]:
        """Seconds per candidate of each rung: measured where the rung ran, else estimated from the timed
        steps of rung 0 (median over the candidates so far)."""
        step, build, batch = self.estimates()
        epoch = self._epoch_estimate(step, batch)
        measured = {}
        for k in range(4):
            times = list(self.seconds.get(k, {}).values())
            if k == 0 and len(times) > self.workers:  # each worker's first job loads data and starts up
                times = times[self.workers:]
            measured[k] = _median(times, math.nan)
        s = self.settings
        c0 = measured[0] if finite(measured[0]) else build + 1.0
        c1 = measured[1] if finite(measured[1]) else build + s.early_steps * step
        c2 = measured[2] if finite(measured[2]) else build + s.short_epochs * epoch
        per_epoch = (c2 - build) / s.short_epochs if finite(measured[2]) else epoch
        c3 = measured[3] if finite(measured[3]) else build + max(0, self.full_epochs - s.short_epochs) * per_epoch
        return (c0, c1, c2, c3)

    def scores(self, numbers: list[int], done_rung: int) -> list[float]:
        """Promotion score of each candidate after ``done_rung`` (higher is better)."""
        from objectives.combine import BUDGET_EARLY_FEATURES

        if done_rung == 2:
            return [self.values[n].get("final_test_acc", 0.0) for n in numbers]
        rows = [self._row(n) for n in numbers]
        if done_rung == 0:
            return self._rung0(numbers, rows)
        return cohort_scores(rows, "early", BUDGET_EARLY_FEATURES, self.life.objectives)

    def _row(self, number: int) -> dict:
        """A candidate's config merged with the values stored so far (what the rung scores rank)."""
        v = self.values[number]
        return {**v[keys.CONFIG], **{k: x for k, x in v.items() if k != keys.CONFIG}}

    def _rung0(self, numbers: list[int], rows: list[dict]) -> list[float]:
        """Rung 0's ranking, calibrated on the labels so far when ``settings.calibrate`` (:func:`rung0_scores`);
        what it learned is stored on the study (:data:`~nas.search.keys.CALIBRATION`) when it changed. Nothing
        of it is in the budget state: a resumed run recomputes it from the stored values."""
        if not getattr(self.settings, "calibrate", False):
            return rung0_scores(rows, self.life.objectives)[0]
        labels, others = study_labels(self.values, list(numbers), self.settings.short_epochs)
        scores, desc = rung0_scores(rows, self.life.objectives, labels, [self._row(n) for n in others])
        if desc is not None and desc != self._calibration:
            self._calibration = desc
            self.study.set_user_attr(keys.CALIBRATION, {**desc, "refit_at": {
                "elapsed_s": round(self.elapsed(), 1), "cohort": len(numbers),
                "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}})
        return scores

    def first_plan(self, cap: int | None) -> Plan:
        """The plan for the whole budget with the pilot's costs; the full training is shortened (halved)
        until one candidate fits (the plan line says so)."""
        epochs = self.full_epochs
        s = self.settings
        while True:
            self.full_epochs = epochs
            try:
                return plan(self.state.budget, self.costs(), self.workers, s.eta, cap, epochs,
                            min(s.short_epochs, epochs))
            except BudgetError:
                if epochs <= 1:
                    raise
                epochs = max(1, epochs // 2)

    def epoch_cost(self, number: int) -> float:
        """Seconds per epoch of one candidate: from its short rung when it ran, else the plan's estimate."""
        short = self.seconds.get(2, {}).get(number)
        if short is not None and self.settings.short_epochs > 0 and not self.values.get(number, {}).get("val_diverged"):
            return short / self.settings.short_epochs  # (a diverged short training stopped early: no epoch's time)
        # the full rung's cost is its epochs after the short rung's when that rung runs, else the whole training
        after = self.full_epochs - (min(self.settings.short_epochs, self.full_epochs) if self.plan.counts[2] else 0)
        return self.plan.rung_costs[3] / max(1, after)

    def short_cost(self, number: int) -> float:
        """Seconds of one candidate's short-rung job before it ran, from its own timed steps and batch size
        at rung 0, as :meth:`costs` estimates the rung's from their medians (NaN when it has none)."""
        v = self.values.get(number, {})
        step, build = v.get("time_step"), v.get("time_build")
        batch = v.get(keys.CONFIG, {}).get("batch_size") if isinstance(v.get(keys.CONFIG), dict) else None
        if not (finite(step) and batch):
            return math.nan
        return (build if finite(build) else 0.0) + self.settings.short_epochs * self._epoch_estimate(step, batch)

    def _epoch_estimate(self, step: float, batch: float) -> float:
        """Seconds of a training epoch from a timed step's seconds and the batch size (the one rule of
        :meth:`costs` and :meth:`short_cost`)."""
        spe = max(1, self.train_size // max(1, int(batch))) if self.train_size else 100
        return spe * step * EPOCH_OVERHEAD

    def rest_cost(self, number: int) -> float:
        """Seconds of the rest of a finalist's full training: its own short-rung time per epoch when it
        ran, else the plan's estimate."""
        short = self.seconds.get(2, {}).get(number)
        if short is not None and self.settings.short_epochs > 0:
            return short / self.settings.short_epochs * max(0, self.full_epochs - self.settings.short_epochs)
        return self.plan.rung_costs[3]

    # ---------------------------------------------------------------- the result
    def save_best(self, number: int) -> dict:
        """``best_model.pt`` (``torch.load(weights_only=True)``: space, config, bounds, dataset, num_classes,
        input_shape, state_dict, test accuracy) from the finalist's checkpoint, and ``best_model.json``;
        returns the summary."""
        import torch

        from ..training import load_checkpoint

        v, s = self.values[number], self.settings
        ckpt = load_checkpoint(self.folder.checkpoint(number))
        path = self.folder.best_model.resolve()
        summary = {
            "trial": number, "space": s.space, "config": v[keys.CONFIG], "dataset": s.dataset,
            "test_acc": v.get("final_test_acc"), "best_test_acc": v.get("val_best_acc"),
            "acc_curve": v.get("val_acc_curve"), "train_loss_curve": v.get("val_loss_curve"),
            "epochs": int(v.get("val_epochs") or self.full_epochs),  # a shortened training's own
            "diverged": v.get("val_diverged"), "seed": v[keys.SEED],
            "checkpoint": str(self.folder.checkpoint(number)), "model": str(path) if ckpt else None,
            "time": round(self.elapsed(), 1),
        }
        if v.get("val_acc_curve") and all(a is None for a in v["val_acc_curve"]):  # regression: no accuracy
            loss = v.get("final_test_acc")
            summary.update(task="regression", test_acc=None, test_loss=-loss if finite(loss) else None,
                           test_loss_curve=v.get("val_test_loss_curve"))
        if ckpt is not None:
            tmp = path.with_suffix(".pt.tmp")
            data = getattr(s, "resolved", {}).get("data")
            # what inference needs besides the weights: how the inputs were prepared, the class names
            inputs = {k: getattr(data, k, None) for k in ("mean", "std", "class_names", "preprocess")}
            torch.save({"format": 1, "space": s.space, "config": v[keys.CONFIG], "bounds": s.bounds,
                        "dataset": s.dataset, "num_classes": int(ckpt["history"].get("num_classes") or 0),
                        "input_shape": list(self.input_shape), "state_dict": ckpt["model"],
                        "test_acc": v.get("final_test_acc"), "trial": number,
                        **{k: _plain(x) for k, x in inputs.items() if x is not None}}, tmp)
            tmp.replace(path)
        self.folder.best_model_json.write_text(json.dumps(summary, indent=2))
        return summary



def _plain(value: Any) -> Any:
    """A value ``torch.load(weights_only=True)`` reads back: lists and numbers instead of arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_plain(x) for x in value]
    if isinstance(value, dict):
        return {str(k): _plain(x) for k, x in value.items()}
    return value
