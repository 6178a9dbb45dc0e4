"""The driver of ``python -m nas search --budget``: :func:`run_budget` runs the rungs of the plan.

It runs the jobs (torch, Optuna, Ray through :mod:`nas.runner`): a pilot of rung-0 candidates measures the
costs, :func:`nas.schedule.plan` sizes the rungs, every rung's candidates run as jobs on the workers, the
plan is re-fitted to the time left (:func:`nas.schedule.replan`) and the best candidates are promoted
(:func:`nas.schedule.promote`); the finalists' full trainings end with ``best_model.pt``. The planner
stays pure in :mod:`nas.schedule`; see its docstring for the rungs.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .schedule import DEFAULT_ETA, RESERVE, RUNGS, BudgetError, Plan, plan, promote, replan, waves_time

__all__ = ["BudgetSettings", "run_budget", "run_job", "EARLY_RUNG_KEYS"]

#: Values of the early rung kept on the trial (the rest of its result repeats or blanks rung 0's).
EARLY_RUNG_KEYS = ("loss_curve", "loss_early", "loss_drop", "train_loss_first", "train_loss_last", "train_kappa_w",
                   "train_loss_smooth_min")
#: Planning margin on a training epoch estimated from the timed steps (evaluation, batch assembly).
EPOCH_OVERHEAD = 1.25


@dataclasses.dataclass
class BudgetSettings:
    """The budget of ``python -m nas search --budget`` (see :func:`run_budget`).

    Attributes:
        budget: wall-clock seconds of the whole run.
        full_epochs: epochs of the full training of the finalists (cut to fit the budget when needed).
        short_epochs: epochs of the short rung (the beginning of the full training).
        eta: reduction factor of successive halving.
        max_candidates: most candidates at rung 0 (None: as many as the budget allows).
        pilot: rung-0 candidates measured before planning (None: 3 x workers, at least 6; each worker's
            first job is left out of the cost, it loads the data).
        amp: mixed precision of the trainings on CUDA (see :class:`nas.training.TrainSpec`).
        time_steps: training steps timed on every rung-0 candidate (plans the training rungs).
    """

    budget: float
    full_epochs: int = 10
    short_epochs: int = 1
    eta: int = DEFAULT_ETA
    max_candidates: int | None = None
    pilot: int | None = None
    amp: str = "auto"
    time_steps: int = 3


def run_job(spec):
    """One job of the budgeted search on a worker: :func:`nas.evaluate.evaluate` for a ``TrialSpec``,
    :func:`nas.training.train` for a ``TrainSpec`` (module level: Ray pickles it)."""
    from .evaluate import TrialSpec, evaluate
    from .training import train

    return evaluate(spec) if isinstance(spec, TrialSpec) else train(spec)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _median(values, default: float) -> float:
    vals = [float(v) for v in values if _finite(v)]
    return float(np.median(vals)) if vals else default


def _final_acc(history: dict) -> float:
    if history.get("diverged"):
        v = history.get("final_test_acc")
    else:
        accs = [a for a in history.get("test_acc", []) if a is not None]
        v = accs[-1] if accs else None
    return float(v) if _finite(v) else 0.0


class _BudgetRun:
    """State of one budgeted run (see :func:`run_budget`)."""

    def __init__(self, study, space, settings, budget: BudgetSettings, objectives, constraints, out_dir,
                 input_shape, on_event) -> None:
        import time

        from .runner import default_workers

        self.time = time
        self.study, self.space, self.settings, self.budget = study, space, settings, budget
        self.objectives, self.constraints = objectives, constraints
        self.out_dir = out_dir
        self.input_shape = tuple(input_shape)
        self.on_event = on_event or (lambda event: None)
        self.workers = int(settings.workers or default_workers(settings.trials_per_gpu))
        self.t0 = time.monotonic()
        self.deadline = self.t0 + budget.budget
        self.trials: dict[int, object] = {}  # number -> running optuna.Trial
        self.heartbeat = None  # nas.ownership.Heartbeat: claims every asked trial for this driver
        self.values: dict[int, dict] = {}  # number -> every value stored so far
        self.seconds: dict[int, dict[int, float]] = {}  # rung -> number -> job wall seconds
        self.stats = {"failed": 0, "completed": 0, "rungs": {}, "plan": None}
        self.rung = 0
        self.asked = 0
        self.plan: Plan | None = None

    # ---------------------------------------------------------------- helpers
    def left(self) -> float:
        return self.deadline - self.time.monotonic()

    def event(self, kind: str, **data) -> None:
        self.on_event({"kind": kind, "rung": RUNGS[self.rung], "elapsed": self.time.monotonic() - self.t0,
                       "budget": self.budget.budget, **data})

    def fail(self, number: int, reason: str) -> None:
        from .study import tell_failure

        trial = self.trials.pop(number)
        trial.set_user_attr("rung", RUNGS[self.rung])
        tell_failure(self.study, trial, f"{RUNGS[self.rung]} rung: {reason}")
        self.values.pop(number, None)
        self.stats["failed"] += 1
        self.event("fail", trial=number, reason=reason)

    def finish(self, numbers) -> None:
        """Tell these trials COMPLETE with their objective values; they climb no further."""
        from .study import tell_values

        for n in list(numbers):
            trial = self.trials.pop(n, None)
            if trial is None:
                continue
            trial.set_user_attr("rung", RUNGS[self.rung])
            tell_values(self.study, trial, self.values[n], self.objectives)
            self.stats["completed"] += 1

    def run_jobs(self, executor, jobs, handle, more=None, stop_when=None) -> None:
        """Run ``jobs`` (number -> spec) on the executor, at most ``workers`` at once; ``more()`` gives
        further (number, spec) pairs on demand (rung 0) until ``stop_when()`` is true. Each result goes to
        ``handle(number, status, payload)`` as it arrives; each job's wall seconds are recorded."""
        pending = list(jobs.items())
        started: dict[int, float] = {}
        seconds = self.seconds.setdefault(self.rung, {})
        done = 0
        while True:
            while len(started) < self.workers:
                if pending:
                    number, spec = pending.pop(0)
                elif more is not None and not (stop_when and stop_when()):
                    item = more()
                    if item is None:
                        break
                    number, spec = item
                else:
                    break
                executor.submit(number, spec)
                started[number] = self.time.monotonic()
            if not started:
                return
            for number, status, payload in executor.wait():
                seconds[number] = self.time.monotonic() - started.pop(number)
                done += 1
                handle(number, status, payload)
                self.event("job", trial=number, status=status, done=done)

    # ---------------------------------------------------------------- rungs
    def ask(self, spec_for):
        """A new trial and its rung-0 spec (None when the space keeps rejecting samples)."""
        from search_spaces import ConfigError

        from .study import tell_failure

        from .search.ownership import trial_seed

        for _ in range(20):
            trial = self.study.ask()
            if self.heartbeat is not None:
                self.heartbeat.claim(trial)
            try:
                config = self.space.sample(trial)
            except ConfigError as exc:
                tell_failure(self.study, trial, f"invalid config: {exc}")
                self.stats["failed"] += 1
                continue
            seed = trial_seed(trial, self.settings.seed)
            trial.set_user_attr("config", config)
            trial.set_user_attr("seed", seed)
            trial.set_user_attr("threads", self.settings.threads)
            trial.set_user_attr("rung", RUNGS[0])
            self.trials[trial.number] = trial
            self.values[trial.number] = {"config": config, "seed": seed}
            self.asked += 1
            return trial.number, spec_for(config, seed)
        return None

    def init_spec(self, config, seed):
        from .evaluate import TrialSpec

        s = self.settings
        return TrialSpec(space=s.space, config=config, dataset=s.dataset, bounds=s.bounds, data_dir=s.data_dir,
                         metrics=list(s.metrics), early_steps=0, probe_size=s.probe_size, seed=seed,
                         data_seed=s.seed, metric_options=dict(s.metric_options), time_steps=self.budget.time_steps,
                         threads=s.threads)

    def early_spec(self, number):
        from .evaluate import TrialSpec

        s, v = self.settings, self.values[number]
        return TrialSpec(space=s.space, config=v["config"], dataset=s.dataset, bounds=s.bounds, data_dir=s.data_dir,
                         metrics=[], early_steps=s.early_steps, probe_size=s.probe_size, seed=v["seed"],
                         data_seed=s.seed, score_init=False, threads=s.threads)

    def train_spec(self, number, stop_after):
        from .training import TrainSpec
        from .validate import checkpoint_path

        s, v = self.settings, self.values[number]
        return TrainSpec(space=s.space, config=v["config"], dataset=s.dataset, epochs=self.full_epochs,
                         bounds=s.bounds, data_dir=s.data_dir, seed=v["seed"], data_seed=s.seed,
                         checkpoint=str(checkpoint_path(self.out_dir, number)), amp=self.budget.amp, trial=number,
                         stop_after=stop_after, threads=s.threads)

    def store(self, number, result: dict) -> None:
        from .study import store_values

        self.values[number].update(result)
        store_values(self.trials[number], result, self.constraints)

    def store_training(self, number, history: dict, rung: int) -> None:
        from .validate import VAL_KEY, summarize

        summary = summarize(history, "budget search")
        trial = self.trials[number]
        for epoch, acc in enumerate(history.get("test_acc", []), start=1):
            if _finite(acc):  # the dashboard's intermediate values (Trial.report refuses multi-objective studies)
                self.study._storage.set_trial_intermediate_value(trial._trial_id, epoch, float(acc))
        if rung == 3:
            self.study.set_user_attr(VAL_KEY.format(number), summary)  # validate/report see it as validated
        self.store(number, {**summary, "final_test_acc": _final_acc(history)})

    # ---------------------------------------------------------------- costs and scores
    def costs(self) -> tuple[float, float, float, float]:
        """Seconds per candidate of each rung: measured where the rung ran, else estimated from the timed
        steps of rung 0 (median over the candidates so far)."""
        vals = list(self.values.values())
        step = _median([v.get("time_step") for v in vals], 0.05)
        build = _median([v.get("time_build") for v in vals], 1.0)
        n_train = int(getattr(self, "train_size", 0) or 0)
        batch = _median([v["config"].get("batch_size") for v in vals if isinstance(v.get("config"), dict)], 128.0)
        spe = max(1, n_train // max(1, int(batch))) if n_train else 100
        epoch = spe * step * EPOCH_OVERHEAD
        measured = {}
        for k in range(4):
            times = list(self.seconds.get(k, {}).values())
            if k == 0 and len(times) > self.workers:  # each worker's first job loads data and starts up
                times = times[self.workers:]
            measured[k] = _median(times, math.nan)
        c0 = measured[0] if _finite(measured[0]) else build + 1.0
        c1 = measured[1] if _finite(measured[1]) else build + self.settings.early_steps * step
        c2 = measured[2] if _finite(measured[2]) else build + self.budget.short_epochs * epoch
        per_epoch = (c2 - build) / self.budget.short_epochs if _finite(measured[2]) else epoch
        c3 = measured[3] if _finite(measured[3]) else build + max(0, self.full_epochs - self.budget.short_epochs) * per_epoch
        return (c0, c1, c2, c3)

    def scores(self, numbers: list[int], done_rung: int) -> list[float]:
        """Promotion score of each candidate after ``done_rung`` (higher is better)."""
        import pandas as pd

        from objectives.combine import BUDGET_EARLY_FEATURES, BUDGET_INIT_FEATURES, combined_score, feature_values

        if done_rung == 2:
            return [self.values[n].get("final_test_acc", 0.0) for n in numbers]
        phase = "early" if done_rung == 1 else "init"
        rows = []
        for n in numbers:
            v = self.values[n]
            rows.append({**v["config"], **{k: x for k, x in v.items() if k != "config"}})
        table = pd.DataFrame(rows)
        features = BUDGET_EARLY_FEATURES if phase == "early" else BUDGET_INIT_FEATURES
        try:
            if all(np.isfinite(feature_values(table, f.key)).any() for f in features):
                return list(combined_score(table, phase, features).to_numpy())
        except KeyError:
            pass
        # the combined score's inputs are missing (other --metrics): non-dominated rank of the objectives
        from .study import worst_if_undefined

        signed = [[worst_if_undefined(self.values[n].get(o.key), o.direction) * (1 if o.direction == "minimize" else -1)
                   for o in self.objectives] for n in numbers]
        ranks = [1 + sum(all(a <= b for a, b in zip(other, mine)) and other != mine for other in signed)
                 for mine in signed]
        return [-float(r) for r in ranks]


def run_budget(study, space, settings, budget: BudgetSettings, objectives, constraints, out_dir, input_shape,
               train_size: int, on_event=None) -> dict:
    """Run a budgeted multi-fidelity search on ``study`` (module docstring): plan from the first rung-0
    candidates, climb the rungs, tell every trial when it stops climbing, train the finalists to the end
    and save the best as ``OUT_DIR/best_model.pt``.

    Args:
        study, space, settings, objectives, constraints: as for :func:`nas.runner.run_trials` (the
            objectives are told when a trial stops; use init-phase keys, which every candidate has).
        budget: the budget and the training rungs' epochs.
        out_dir: the study's folder (checkpoints, ``best_model.pt``, ``best_model.json``).
        input_shape, train_size: the dataset's image shape and training-set size (plans epochs).
        on_event: receives dicts ``{"kind": "plan" | "rung" | "job" | "fail" | "done", "rung", "elapsed",
            "budget", ...}`` for a progress display.

    Returns:
        ``{"plan", "failed", "completed", "rungs": {rung: candidates}, "best": {...} or None}``.
    """
    import json as _json
    from pathlib import Path

    from .runner import make_executor, sigterm_interrupts
    from .search.ownership import Driver, Heartbeat, recover_stale_trials

    run = _BudgetRun(study, space, settings, budget, objectives, constraints, Path(out_dir), input_shape, on_event)
    run.train_size = train_size
    run.full_epochs = int(budget.full_epochs)
    driver = Driver.new()
    recovered = recover_stale_trials(study, driver, settings.stale_grace)
    executor = make_executor(run.workers, run_job, settings.trials_per_gpu, settings.trial_timeout,
                             settings.ray_address)
    if settings.workers is None:  # a joined cluster runs as many candidates at once as it has workers
        from .runner import cluster_workers

        run.workers = cluster_workers(executor, settings.trials_per_gpu) or run.workers
    run.heartbeat = Heartbeat(study, driver, settings.heartbeat_interval).__enter__()
    cap = budget.max_candidates
    pilot = budget.pilot or max(6, 3 * run.workers)
    if cap is not None:
        pilot = min(pilot, cap)
    cohort: list[int] = []

    def handle(number, status, payload) -> None:
        if status != "ok":
            run.fail(number, str(payload))
        elif run.rung == 0:
            run.store(number, payload)
            cohort.append(number)
        elif run.rung == 1:
            run.store(number, {key: payload[key] for key in EARLY_RUNG_KEYS if key in payload})
            cohort.append(number)
        else:
            run.store_training(number, payload, run.rung)
            cohort.append(number)

    with sigterm_interrupts():
        try:
            # ---- rung 0: the pilot, the plan, then the rest of the cohort
            ask = lambda: run.ask(run.init_spec)  # noqa: E731
            run.run_jobs(executor, {}, handle, more=ask, stop_when=lambda: run.asked >= pilot)
            run.plan = _first_plan(run, cap)
            run.stats["plan"] = run.plan
            run.event("plan", plan=run.plan, recovered=recovered)
            target = run.plan.counts[0]

            def rung0_done() -> bool:
                """Rung 0 goes on while the plan, re-fitted to the time left and the costs measured so far,
                still has room for more candidates before the later rungs."""
                nonlocal target
                if cap is not None and run.asked >= cap:
                    return True
                costs = run.costs()
                later = dataclasses.replace(run.plan, costs=costs)
                need = sum(waves_time(n, c, run.workers) for n, c in zip(later.counts[1:], later.rung_costs[1:]))
                tight = run.left() * (1 - RESERVE) - need < costs[0]
                if tight or run.asked % (4 * run.workers) == 0:
                    # the time left, plus what the candidates asked so far cost at today's estimate
                    horizon = max(0.0, run.left()) + waves_time(run.asked, costs[0], run.workers)
                    try:
                        run.plan = plan(horizon, costs, run.workers, budget.eta, cap, run.full_epochs,
                                        min(budget.short_epochs, run.full_epochs))
                    except BudgetError:
                        return True  # not even the smallest chain fits any more: go on with what there is
                    target = run.plan.counts[0]
                return run.asked >= target

            run.run_jobs(executor, {}, handle, more=ask, stop_when=rung0_done)
            run.stats["rungs"][RUNGS[0]] = len(cohort)
            prev = 0
            for k in (1, 2, 3):
                if run.plan.counts[k] == 0 or not cohort:
                    continue
                run.plan = replan(run.plan, prev, run.left(), run.costs(), available=len(cohort))
                run.rung = prev
                survivors = sorted(cohort)
                scores = run.scores(survivors, prev)
                fits = None
                if k == 3:  # each finalist's rest of training, from its own short rung when it ran
                    fits = [_rest_cost(run, n) <= max(0.0, run.left()) * (1 - RESERVE) for n in survivors]
                    if not any(fits):
                        # none finishes its --epochs in time: the best one trains fewer epochs, from scratch
                        # (a shorter cosine schedule), as many as fit; it says so
                        best_n = survivors[promote(scores, 1)[0]]
                        per_epoch = _epoch_cost(run, best_n)
                        epochs = int(max(0.0, run.left()) * (1 - RESERVE) // per_epoch) if per_epoch > 0 else 0
                        if 1 <= epochs < run.full_epochs:
                            run.event("shorten", trial=best_n, epochs=epochs, was=run.full_epochs)
                            run.full_epochs = epochs
                            # its short-rung checkpoint follows the longer schedule: start clean, not with
                            # training's "made for another config/epochs" warning
                            from .validate import checkpoint_path

                            checkpoint_path(run.out_dir, best_n).unlink(missing_ok=True)
                        fits = [n == best_n for n in survivors]
                chosen = [survivors[j] for j in promote(scores, run.plan.counts[k], fits)]
                for n, sc in zip(survivors, scores):
                    run.trials[n].set_user_attr(f"score@{RUNGS[prev]}", float(sc) if _finite(sc) else None)
                run.finish([n for n in survivors if n not in chosen])
                run.rung = k
                run.event("rung", count=len(chosen), plan=run.plan)
                if k == 1:
                    jobs = {n: run.early_spec(n) for n in chosen}
                else:
                    jobs = {n: run.train_spec(n, budget.short_epochs if k == 2 else None) for n in chosen}
                cohort.clear()
                run.run_jobs(executor, jobs, handle)
                run.stats["rungs"][RUNGS[k]] = len(cohort)
                prev = k
            # ---- the end: the best fully trained finalist is the result; every trial is told
            run.rung = prev
            trained = sorted(cohort) if prev == 3 else []
            best = max(trained, key=lambda n: (run.values[n].get("final_test_acc", 0.0), -n)) if trained else None
            summary = _save_best(run, best) if best is not None else None
            run.finish(list(run.trials))
            run.stats["best"] = summary
            if summary:
                (Path(out_dir) / "best_model.json").write_text(_json.dumps(summary, indent=2))
            run.event("done", best=summary)
        finally:
            executor.shutdown()
            run.heartbeat.__exit__(None, None, None)
    return run.stats


def _epoch_cost(run: _BudgetRun, number: int) -> float:
    """Seconds per epoch of one candidate: from its short rung when it ran, else the plan's estimate."""
    short = run.seconds.get(2, {}).get(number)
    if short is not None and run.budget.short_epochs > 0:
        return short / run.budget.short_epochs
    return run.plan.rung_costs[3] / max(1, run.full_epochs)


def _rest_cost(run: _BudgetRun, number: int) -> float:
    """Seconds of the rest of a finalist's full training: its own short-rung time per epoch when it ran,
    else the plan's estimate."""
    short = run.seconds.get(2, {}).get(number)
    if short is not None and run.budget.short_epochs > 0:
        return short / run.budget.short_epochs * max(0, run.full_epochs - run.budget.short_epochs)
    return run.plan.rung_costs[3]


def _first_plan(run: _BudgetRun, cap: int | None) -> Plan:
    """The plan for the whole budget with the pilot's costs; the full training is shortened (halved) until
    one candidate fits (the plan line says so)."""
    epochs = run.full_epochs
    while True:
        run.full_epochs = epochs
        try:
            return plan(run.budget.budget, run.costs(), run.workers, run.budget.eta, cap, epochs,
                        min(run.budget.short_epochs, epochs))
        except BudgetError:
            if epochs <= 1:
                raise
            epochs = max(1, epochs // 2)


def _save_best(run: _BudgetRun, number: int) -> dict:
    """``best_model.pt`` (``torch.load(weights_only=True)``: space, config, bounds, dataset, num_classes,
    input_shape, state_dict, test accuracy) from the finalist's checkpoint; returns the summary."""
    import torch

    from .training import load_checkpoint
    from .validate import checkpoint_path

    v = run.values[number]
    ckpt = load_checkpoint(checkpoint_path(run.out_dir, number))
    path = (run.out_dir / "best_model.pt").resolve()
    summary = {
        "trial": number, "space": run.settings.space, "config": v["config"], "dataset": run.settings.dataset,
        "test_acc": v.get("final_test_acc"), "best_test_acc": v.get("val_best_acc"),
        "acc_curve": v.get("val_acc_curve"), "train_loss_curve": v.get("val_loss_curve"),
        "epochs": run.full_epochs, "diverged": v.get("val_diverged"), "seed": v["seed"],
        "checkpoint": str(checkpoint_path(run.out_dir, number)), "model": str(path) if ckpt else None,
        "time": round(run.time.monotonic() - run.t0, 1),
    }
    if ckpt is not None:
        tmp = path.with_suffix(".pt.tmp")
        torch.save({"format": 1, "space": run.settings.space, "config": v["config"], "bounds": run.settings.bounds,
                    "dataset": run.settings.dataset, "num_classes": int(ckpt["history"].get("num_classes") or 0),
                    "input_shape": list(run.input_shape), "state_dict": ckpt["model"],
                    "test_acc": v.get("final_test_acc"), "trial": number}, tmp)
        tmp.replace(path)
    return summary
