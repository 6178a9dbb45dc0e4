"""``SearchConfig``: the single description of a search.

The command line builds one from its arguments, ``nas.search(...)`` from its keyword arguments; the
search reads nothing else. :meth:`SearchConfig.resolve` fills the defaults that depend on the machine and
the data (budget mode or trials mode, the 15-minute / 1-hour budget, the space's CPU bounds, the measured
objectives and metrics, the dataset behind ``auto``, the study name) and checks every value, raising
:class:`SearchError` with one line that says what to do. :meth:`SearchConfig.study_settings` is what the
study stores (a rerun with other settings is refused); a resumed run reads the same fields back.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Sequence

from .inputs import (
    SearchError, _has_cuda, check_group_size, check_probe_size, check_space_fits, data_options, metric_names,
    open_dataset, open_space,
)
from .keys import StudyFolder
from .names import check_storage_url, check_study_name

__all__ = ["SearchConfig", "SearchError", "MIN_BUDGET_S", "CPU_BUDGET_S", "GPU_BUDGET_S", "MAX_WORKERS"]

logger = logging.getLogger(__name__)

#: The shortest budget a budget search accepts (measuring the first candidates takes some).
MIN_BUDGET_S = 30.0
#: Default budgets without ``budget`` and ``trials``: 15 minutes on a CPU, 1 hour on a GPU.
CPU_BUDGET_S = 900.0
GPU_BUDGET_S = 3600.0
#: Upper bound of ``workers`` (a bigger number is a typo, not a machine).
MAX_WORKERS = 1024


@dataclasses.dataclass
class SearchConfig:
    """Everything a search needs; the defaults are the command line's (``python -m nas search --help``).

    Search mode: with ``trials`` and no ``budget``, a proxy-only search to ``trials`` COMPLETE trials;
    otherwise a budgeted multi-fidelity search of ``budget`` (seconds or ``"20m"``/``"1h30m"``; default 15
    minutes on CPU, 1 hour on GPU) in which ``trials`` caps the candidates at rung 0.

    Attributes:
        space: a registered search space name (``python -m nas spaces``) or a reference to user code
            (``package.module:attr``, ``my_space.py:attr``); default ``resnet_cifar``, ``mlp_looks_linear``
            for a ``table:`` dataset.
        bounds: narrow the space, e.g. ``{"width": [8, 16]}``; ``smoke``: the space's tiny smoke bounds.
        dataset: ``auto`` (CIFAR-10 when on disk, else mnist5k), ``cifar10``, ``mnist5k``, ``synthetic``, or a
            data reference (``folder:PATH``, ``table:PATH``, ``module:function``, ``saved:PATH``: see
            ``docs/data.md``); ``target``: the label column of a ``table:`` dataset.
        loss_fn: the training loss (``nas.data.loss``): ``None``/``"cross_entropy"``, a regression loss
            (``"mse"``, ``"l1"``, ``"smooth_l1"``, ``"huber"``), ``"module:function"``, or from Python a function
            ``(outputs, targets) -> scalar`` (without an import path: ``workers=1`` only).
        data_memory_limit: data larger than this as float32 tensors (bytes or ``"2G"``) streams from disk
            through a DataLoader (image folders, torch Datasets); default a quarter of the machine's memory.
        objectives: ``"key:dir,..."`` (default: the measured defaults of the mode); ``constraints``: a list
            of ``"key<=x"`` (default none); ``metrics``: metrics scored on every trial (None: the combined
            score's inputs; ``"all"``; or names), objectives' and constraints' metrics always added.
        study, storage, runs_dir: the study name (default ``SPACE-DATASET-DATE``) and its storage (default
            ``sqlite:///RUNS_DIR/STUDY/study.db``).
        workers: parallel trials (None: GPUs x ``trials_per_gpu``, else CPU cores; 1: in process).
        threads: torch threads of every trial, whatever runs it (stored with the study).
        early_steps, probe_size, group_size: the scoring (see :class:`nas.evaluate.TrialSpec`).
        epochs, eta: the budget search's full-training epochs and reduction factor; ``short_epochs``:
            its short rung; ``pilot``: rung-0 candidates measured before planning (None: 3 x workers, at
            least 6); ``amp``: mixed precision of its trainings on CUDA; ``time_steps``: training steps
            timed on every rung-0 candidate (plans the training rungs); ``promotion``: ``"async"``
            (a candidate climbs as soon as it is in the top of those done at its rung, ASHA), ``"sync"``
            (a rung promotes when all its candidates are in) or ``"auto"`` (async from
            :data:`~nas.search.budget.ASYNC_MIN_WORKERS` workers on, else sync: on one worker the replay found sync
            better, on a cluster async reaches a good candidate sooner; docs/budget-search.md); ``brackets``: the most Hyperband brackets
            (1: one; more when the budget allows, :func:`nas.search.plan.plan_brackets`); ``calibrate``: rank
            rung 0 by the shipped score refit on the early and short rungs' results so far, once there are
            enough (:mod:`nas.search.rung0`; the asynchronous climb only); rung 0 then also scores the
            rung-0 pool (:data:`nas.lab.calibration.POOL_METRICS`) for the refit to weigh.
    """

    space: str | None = None
    bounds: dict[str, Any] = dataclasses.field(default_factory=dict)
    smoke: bool = False
    dataset: str = "auto"
    target: str | None = None
    loss_fn: Any = None
    data_memory_limit: int | str | None = None
    data_dir: str = "data"
    budget: float | str | None = None
    trials: int | None = None
    epochs: int = 10
    eta: int = 3
    short_epochs: int = 1
    pilot: int | None = None
    amp: str = "auto"
    time_steps: int = 3
    promotion: str = "auto"
    brackets: int = 1
    calibrate: bool = False
    objectives: str | None = None
    constraints: Sequence[str] | None = None
    metrics: str | Sequence[str] | None = None
    sampler: str = "nsga2"
    study: str | None = None
    storage: str | None = None
    runs_dir: str = "runs"
    workers: int | None = None
    trials_per_gpu: int = 1
    threads: int = 1
    ray_address: str | None = None
    stale_grace: float | None = None
    heartbeat_interval: float | None = None
    early_steps: int = 50
    probe_size: int = 64
    group_size: int = 8
    trial_timeout: float | None = None
    max_failures: int | None = None
    seed: int = 0
    # ---- filled by resolve()
    mode: str = ""
    budget_s: float | None = None
    resolved: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ resolution
    def resolve(self, *, gpu: bool | None = None, warn=None) -> "SearchConfig":
        """A copy with every default filled and every value checked (:class:`SearchError` otherwise).

        Loads the dataset (to check the probe size and resolve ``auto``); ``warn(text)`` receives a
        fallback notice (default: logged). ``resolved`` holds the objects the run uses: ``space``,
        ``data``, ``objectives``, ``constraints``, ``folder``.
        """
        from .plan import BudgetError, parse_duration
        from ..lab.calibration import POOL_METRICS
        from ..study import (
            DEFAULT_CONSTRAINTS, SAMPLERS, StudyError, budget_metrics, budget_objectives, combined_metrics,
            default_objectives, metric_of, parse_constraint, parse_objectives,
        )

        c = dataclasses.replace(self, bounds=dict(self.bounds or {}))
        c.dataset = data_options(c.dataset, c.target, c.loss_fn, c.data_memory_limit)  # they travel in the reference
        c.target = c.loss_fn = c.data_memory_limit = None
        if "loss=local:" in c.dataset and c.workers != 1:
            raise SearchError("loss_fn has no import path (a lambda or a notebook function): pass workers=1 to search "
                              "in this process, or define it in a module or .py file")
        if c.space is None:
            c.space = "mlp_looks_linear" if str(c.dataset).startswith("table:") else "resnet_cifar"
        if c.trials is not None and c.trials < 1:
            raise SearchError(f"trials must be >= 1, got {c.trials}")
        if c.workers is not None and not 1 <= c.workers <= MAX_WORKERS:
            raise SearchError(f"workers must be in 1..{MAX_WORKERS}, got {c.workers}")
        if c.promotion not in ("auto", "sync", "async"):
            raise SearchError(f"promotion must be 'auto', 'sync' or 'async', got {c.promotion!r}")
        if isinstance(c.brackets, bool) or not isinstance(c.brackets, int) or c.brackets < 1:
            raise SearchError(f"brackets must be an integer >= 1, got {c.brackets!r}")
        if c.brackets > 1 and c.promotion == "sync":
            raise SearchError(f"--brackets {c.brackets} runs in the asynchronous climb: use --promotion auto or async, "
                              "or --brackets 1 with --promotion sync")
        if not isinstance(c.calibrate, bool):
            raise SearchError(f"calibrate must be True or False, got {c.calibrate!r}")
        if c.epochs < 1 or c.eta < 2:
            raise SearchError(f"need --epochs >= 1 and --eta >= 2, got {c.epochs} and {c.eta}")
        if c.early_steps < 0:
            raise SearchError(f"--early-steps must be >= 0, got {c.early_steps}")
        if c.sampler not in SAMPLERS:
            raise SearchError(f"unknown sampler {c.sampler!r}; valid: {', '.join(SAMPLERS)}")
        try:
            if c.study:
                check_study_name(c.study)
            if c.storage:
                c.storage = check_storage_url(c.storage)
        except ValueError as exc:
            raise SearchError(str(exc)) from None
        if c.threads < 1 or (c.max_failures is not None and c.max_failures < 1) or not 0 <= c.seed < 2**32:
            raise SearchError(f"need threads >= 1, max_failures >= 1 and 0 <= seed < 2**32, got {c.threads}, "
                              f"{c.max_failures} and {c.seed}")
        c.ray_address = c.ray_address or os.environ.get("RAY_ADDRESS") or None  # as the command line does
        c.mode = "budget" if c.budget is not None or c.trials is None else "trials"
        if c.budget is not None:
            try:
                c.budget_s = float(c.budget) if isinstance(c.budget, (int, float)) else parse_duration(c.budget)
            except BudgetError as exc:
                raise SearchError(f"--budget: {exc}") from None
            if c.budget_s < MIN_BUDGET_S:
                raise SearchError(f"--budget {c.budget} is too short: a budget search needs at least "
                                  f"{MIN_BUDGET_S:g}s (measuring the first candidates takes some)")
        gpu = _has_cuda() if gpu is None else gpu
        space = open_space(c.space, c.bounds, c.smoke)
        c.space = space.ref or c.space
        if not isinstance(c.space, str) or not c.space:
            if c.workers != 1:
                raise SearchError("this space has no importable reference (a lambda or a notebook function): pass "
                                  "workers=1 to search it in this process, or define it in a module or .py file")
            c.space = _register_local(space)
        if c.mode == "budget" and not c.bounds and not c.smoke and not gpu and space.cpu_bounds:
            space = space.with_bounds(**space.cpu_bounds)  # a default that a CPU trains within the budget
        if c.mode == "budget" and c.budget is None:
            c.budget_s = GPU_BUDGET_S if gpu else CPU_BUDGET_S
        try:
            objectives = parse_objectives(c.objectives or (budget_objectives() if c.mode == "budget"
                                                           else default_objectives(c.early_steps)))
            if c.mode == "budget":
                _check_budget_objectives(objectives)
            raw = DEFAULT_CONSTRAINTS if c.constraints is None else [x for x in c.constraints if x != "none"]
            constraints = [parse_constraint(x) for x in raw]
        except StudyError as exc:
            raise SearchError(str(exc)) from None
        referenced = [m for m in (metric_of(k) for k in [o.key for o in objectives] + [x.key for x in constraints]) if m]
        if c.metrics is None:
            pool = POOL_METRICS if c.mode == "budget" and c.calibrate else ()  # what the refit may weigh
            c.metrics = list(dict.fromkeys([*(budget_metrics() if c.mode == "budget" else combined_metrics()),
                                            *pool, *referenced]))
        else:
            c.metrics = metric_names(c.metrics, referenced)
        check_group_size(c.group_size, c.probe_size)
        c.dataset, data = open_dataset(c.dataset, c.data_dir, warn or (lambda text: logger.warning("%s", text)),
                                       seed=c.seed)
        check_probe_size(c.probe_size, data)
        check_space_fits(space, data)
        c.bounds = dict(space.bounds)
        c.objectives = ",".join(str(o) for o in objectives)
        c.constraints = [str(x) for x in constraints]
        if not c.study:
            from ..data import dataset_label

            c.study = f"{_label(c.space)}-{dataset_label(c.dataset)}-{time.strftime('%Y%m%d-%H%M%S')}"
        c.resolved = {"space": space, "data": data, "objectives": objectives, "constraints": constraints,
                      "folder": StudyFolder.of(c.runs_dir, c.study)}
        return c

    # ------------------------------------------------------------------ what the study stores
    def study_settings(self) -> dict[str, Any]:
        """The study's user attributes describing this search (fixed per study; a rerun must match)."""
        if not self.mode:
            raise SearchError("resolve() the SearchConfig first")
        settings = {
            "space": self.space, "bounds": self.bounds, "dataset": self.dataset,
            "dataset_info": self.resolved["data"].describe(), "objectives": self.objectives.split(","),
            "constraints": list(self.constraints), "metrics": list(self.metrics), "early_steps": self.early_steps,
            "probe_size": self.probe_size, "group_size": self.group_size, "seed": self.seed, "threads": self.threads,
        }
        if self.mode == "budget":
            settings.update(mode="budget", epochs=self.epochs)
        return settings

    @classmethod
    def from_study(cls, study: Any) -> "SearchConfig":
        """The search a study was made with, read back from what :meth:`study_settings` stored (validate,
        report and a resumed run read it; fields the study does not fix keep their defaults).

        Raises:
            SearchError: the study was not made by a gradnas search (no space or dataset setting).
        """
        attrs = study.user_attrs
        missing = [k for k in ("space", "dataset") if k not in attrs]
        if missing:
            raise SearchError(f"study {study.study_name!r} has no {', '.join(missing)} setting: only studies made by "
                              f"`python -m nas search` can be validated")
        fields = {k: attrs[k] for k in ("space", "dataset", "early_steps", "probe_size", "group_size", "seed",
                                        "threads", "epochs") if k in attrs}
        return cls(**fields, bounds=dict(attrs.get("bounds") or {}),
                   objectives=",".join(attrs.get("objectives") or []) or None,
                   constraints=list(attrs.get("constraints") or []), metrics=list(attrs.get("metrics") or []) or None,
                   mode=str(attrs.get("mode") or "trials"), study=study.study_name)

    @property
    def folder(self) -> StudyFolder:
        return StudyFolder.of(self.runs_dir, self.study)

    @property
    def metric_options(self) -> dict[str, Any]:
        return {"group_size": self.group_size}


# ---------------------------------------------------------------------- helpers of resolve()
def _register_local(space: Any) -> str:
    """Register a space without a reference under a name of this process (in-process searches only)."""
    from search_spaces import _registry

    name = space.name if space.name and ":" not in space.name else f"local-{id(space):x}"
    if _registry._SPACES.get(name) is not None and getattr(_registry._SPACES[name], "_space", None) is not space:
        name = f"{name}-{id(space):x}"

    def factory(**bounds: Any) -> Any:
        return space.with_bounds(**bounds) if bounds else space

    factory._space = space
    _registry._SPACES[name] = factory
    return name


def _label(space: str) -> str:
    """A space name or a user-code reference as it may appear in a study name (``pkg.mod:attr`` -> ``attr``)."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", space.rsplit(":", 1)[-1].rsplit("/", 1)[-1].removesuffix(".py"))[:40] or "space"


def _check_budget_objectives(objectives) -> None:
    """A budget search tells every candidate its rung-0 (init) values: objectives must be measured there."""
    from objectives.combine import DERIVED

    from ..study import metric_of
    from .keys import EARLY_RUNG_KEYS, EARLY_SUFFIX

    for o in objectives:
        early = o.key.endswith(EARLY_SUFFIX) or o.key in EARLY_RUNG_KEYS
        if early or not (metric_of(o.key) or o.key in DERIVED or o.key in ("params", "flops", "loss_init")):
            raise SearchError(f"objective {o} is not measured at initialization: a budget search ranks its first rung "
                              f"by init values (the early steps' loss ranks the next rung by itself); use init metrics, "
                              f"or --trials N for a proxy-only search")
