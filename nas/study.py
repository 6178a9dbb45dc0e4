"""The Optuna study: objectives, constraints, sampler, storage, resume and export.

Objectives are ``key:direction`` pairs (``kappa_w:min,confusion:min``); constraints are
``key<=bound`` or ``key>=bound`` (``rank_input<=0.15``). A key is a registered metric (measured at
initialization), a metric with ``@early`` (after the early training steps), or a derived value of
:mod:`nas.evaluate` (``loss_drop``, ``train_kappa_w``, ``params``, ...). Constraints reach Optuna's
NSGA-II / TPE samplers through ``Trial.set_constraint`` (<= 0 means satisfied).

Studies are opened in one place: :func:`open_storage` (an RDB URL, retried while SQLite's schema is
being created by another process), used by :func:`open_study` (create or resume, for the search) and
:func:`load_study` (an existing study, for validate, report and diagnose).

Every trial stores its config, every metric and derived value, and the constraint violations as user
attributes, so the dashboard, ``trials.csv`` and the report see everything, not only the objectives.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import optuna

from objectives import registry
from objectives.combine import (
    BUDGET_EARLY_FEATURES, BUDGET_INIT_FEATURES, CONFIG_COLUMNS, EARLY_FEATURES, INIT_FEATURES, feature_inputs,
)

from .search.keys import DERIVED_KEYS, EARLY_SUFFIX

__all__ = [
    "StudyError", "Objective", "Constraint", "DEFAULT_OBJECTIVES", "DEFAULT_CONSTRAINTS", "SAMPLERS",
    "DEFAULT_EARLY_STEPS", "default_objectives", "combined_metrics", "budget_objectives", "budget_metrics",
    "parse_objectives", "parse_constraint", "metric_of", "default_storage", "open_storage", "open_study", "load_study",
    "make_sampler", "export_trials",
]

logger = logging.getLogger(__name__)

#: Objectives of a search without ``--objectives``: the leading inputs of the combined gradnas score
#: (:mod:`objectives.combine`, chosen on the proxy lab's held-out halves) in their measured directions:
#: the early set when the search runs early steps, else the init set (:func:`default_objectives`).
#: The thesis defaults (confusion, diversity, kappa_w minimized, rank_input <= 0.15) ranked trained
#: accuracy no better than random on the lab (README, "Which metrics rank networks").
DEFAULT_OBJECTIVE_COUNT = 3
DEFAULT_EARLY_STEPS = 50
#: Constraints of a search without ``--constraint``: none. ``rank_input<=0.15`` removed the best configs
#: of the lab and ``loss_drop>=0`` is implied by the early loss objective.
DEFAULT_CONSTRAINTS: tuple[str, ...] = ()
SAMPLERS = ("nsga2", "tpe", "random")
_DIRECTIONS = {"min": "minimize", "minimize": "minimize", "max": "maximize", "maximize": "maximize"}

#: Violation recorded for a constraint whose value is missing or not finite.
_VIOLATED = 1e9


class StudyError(ValueError):
    """Bad objectives, constraints, sampler, storage, or a study that does not match its settings."""


@dataclasses.dataclass(frozen=True)
class Objective:
    key: str
    direction: str  # "minimize" | "maximize"

    def __str__(self) -> str:
        return f"{self.key}:{'min' if self.direction == 'minimize' else 'max'}"


@dataclasses.dataclass(frozen=True)
class Constraint:
    key: str
    op: str  # "<=" | ">="
    bound: float

    def violation(self, values: dict[str, Any]) -> float:
        """Optuna's convention: <= 0 when satisfied, the size of the violation otherwise."""
        v = values.get(self.key)
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            return _VIOLATED
        return float(v - self.bound) if self.op == "<=" else float(self.bound - v)

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.bound:g}"


def _objective_text(features) -> str:
    values = [f for f in features if f.key not in (*CONFIG_COLUMNS, "log_lr")]
    keys = sorted(values, key=lambda f: -f.weight)[:DEFAULT_OBJECTIVE_COUNT]  # stable: the set's order among ties
    return ",".join(f"{f.key}:{'max' if f.direction == 'maximize' else 'min'}" for f in keys)


def default_objectives(early_steps: int = DEFAULT_EARLY_STEPS) -> str:
    """The default objectives for a search with ``early_steps`` early steps (see :data:`DEFAULT_OBJECTIVE_COUNT`):
    the first inputs of the combined score's early (or, without early steps, init) feature set that are
    values of a trial (config-only features such as ``batch_size`` rank the trials but are not objectives)."""
    return _objective_text(EARLY_FEATURES if early_steps > 0 else INIT_FEATURES)


def combined_metrics() -> list[str]:
    """Registered metrics the combined score reads (both feature sets): what a search scores by default."""
    names = set(registry.names())
    return [k for k in feature_inputs((*INIT_FEATURES, *EARLY_FEATURES)) if k in names]


def budget_objectives() -> str:
    """The default objectives of a budgeted search: the non-config inputs of its rung-0 score
    (:data:`objectives.combine.BUDGET_INIT_FEATURES`), told for every candidate when it stops climbing."""
    return _objective_text(BUDGET_INIT_FEATURES)


def budget_metrics() -> list[str]:
    """Registered metrics a budgeted search scores at rung 0: the inputs of its two feature sets (the early
    rung adds only the training loss, no metric)."""
    names = set(registry.names())
    return [k for k in feature_inputs((*BUDGET_INIT_FEATURES, *BUDGET_EARLY_FEATURES)) if k in names]


#: The default objectives of a search with the default early steps (kept as a constant for the CLI help).
DEFAULT_OBJECTIVES = default_objectives()


def metric_of(key: str) -> str | None:
    """The registered metric a key refers to (``confusion@early`` -> ``confusion``), or None."""
    base = key[: -len(EARLY_SUFFIX)] if key.endswith(EARLY_SUFFIX) else key
    return base if base in registry.names() else None


def _check_key(key: str, what: str) -> None:
    if key in DERIVED_KEYS or metric_of(key):
        return
    valid = ", ".join(registry.names())
    raise StudyError(
        f"unknown {what} key {key!r}: use a metric ({valid}), a metric with '{EARLY_SUFFIX}' "
        f"(after the early steps), or one of {', '.join(DERIVED_KEYS)}"
    )


def parse_objectives(text: str) -> list[Objective]:
    """Parse ``"kappa_w:min,confusion:min"``; a key without direction takes the direction measured on the
    proxy lab at its phase (``registry.get(m).direction_for``), else the paper's."""
    out: list[Objective] = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        key, _, direction = part.partition(":")
        key = key.strip()
        _check_key(key, "objective")
        if direction:
            d = _DIRECTIONS.get(direction.strip().lower())
            if d is None:
                raise StudyError(f"objective {part!r}: direction must be min or max")
        else:
            m = metric_of(key)
            if m is None:
                raise StudyError(f"objective {part!r}: give a direction (e.g. {key}:min)")
            # the direction measured on the proxy lab at that phase, else the paper's hypothesis
            d = registry.get(m).direction_for("early" if key.endswith(EARLY_SUFFIX) else "init")
        out.append(Objective(key, d))
    if not out:
        raise StudyError("no objectives given: e.g. --objectives confusion:min,kappa_w:min")
    if len({o.key for o in out}) != len(out):
        raise StudyError(f"objective keys repeat in {text!r}")
    return out


_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][\w@]*)\s*(<=|>=)\s*([-+0-9.eE]+|inf)\s*$")


def parse_constraint(text: str) -> Constraint:
    """Parse ``"rank_input<=0.15"`` or ``"loss_drop>=0"``."""
    m = _CONSTRAINT.match(text)
    if not m:
        raise StudyError(f"malformed constraint {text!r}: write KEY<=NUMBER or KEY>=NUMBER, e.g. rank_input<=0.15")
    key, op, num = m.groups()
    _check_key(key, "constraint")
    try:
        bound = float(num)
    except ValueError:
        raise StudyError(f"malformed constraint {text!r}: {num!r} is not a number") from None
    return Constraint(key, op, bound)


def default_storage(runs_dir: str | Path, study: str) -> str:
    """``sqlite:///<runs_dir>/<study>/study.db`` (the folder is created)."""
    from .search.keys import StudyFolder

    folder = StudyFolder.of(runs_dir, study)
    folder.root.mkdir(parents=True, exist_ok=True)
    return folder.storage_url


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """NSGA-II (default), TPE or random. NSGA-II and TPE honour the trials' constraints
    (``Trial.set_constraint``, Optuna >= 5); random sampling ignores them."""
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise StudyError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")


#: Attempts, and the first wait in seconds (doubled each time), at opening an RDB storage.
STORAGE_ATTEMPTS, STORAGE_BACKOFF_S = 5, 0.2


def _rdb_storage(url: str) -> optuna.storages.RDBStorage:
    """``RDBStorage(url)``, retried on SQLAlchemy's ``OperationalError``.

    Two processes opening a new SQLite file at once (a search starting while the dashboard, another
    search or a script opens the same file) race to create the schema; the loser gets "database is
    locked" or "table ... already exists", which is over a moment later. Bad URLs, missing drivers and
    the like are not operational errors and raise at once. The loser of the schema race may also get an
    integrity error (SQLite "UNIQUE constraint failed: alembic_version", PostgreSQL "duplicate key ...
    pg_type") or "already exists": retried the same way.
    """
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(STORAGE_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(url)
        except (OperationalError, IntegrityError, ProgrammingError) as exc:
            # opening a storage writes only the schema and its version row: an integrity error there is the
            # other process's schema (SQLite: "UNIQUE constraint failed: alembic_version"; PostgreSQL:
            # "duplicate key ... pg_type")
            racing = isinstance(exc, (OperationalError, IntegrityError)) or "already exists" in str(exc)
            if not racing or attempt == STORAGE_ATTEMPTS - 1:
                raise
            logger.info("opening %s failed (%s); retrying", url, str(exc).splitlines()[0])
            time.sleep(STORAGE_BACKOFF_S * 2**attempt)
    raise AssertionError("unreachable")


def sqlalchemy_url(url: str) -> str:
    """``postgresql://...`` names SQLAlchemy's psycopg2 driver; gradnas depends on psycopg 3, so a plain
    ``postgresql://`` (or ``postgres://``) URL is given the ``+psycopg`` driver unless psycopg2 is
    installed. Any other URL is returned as is."""
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        import importlib.util

        if importlib.util.find_spec("psycopg2") is None:
            return f"postgresql+psycopg://{rest}"
        return f"postgresql://{rest}"
    return url


def open_storage(storage: str) -> optuna.storages.BaseStorage | str:
    """The storage of a URL: an ``RDBStorage`` (retried on ``OperationalError``, see :data:`STORAGE_ATTEMPTS`)
    for ``dialect://...``; any other string is passed through to Optuna as is.

    Raises:
        StudyError: the storage cannot be opened (bad URL, missing driver, unreachable server); one line.
    """
    try:
        return _rdb_storage(sqlalchemy_url(storage)) if "://" in storage else storage
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many types for bad URLs
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "file is not a database" in reason or "database disk image is malformed" in reason:
            raise StudyError(f"cannot open storage {storage!r}: the file is not a readable study database "
                             f"({reason}); give the study.db a search wrote, or another --storage") from None
        raise StudyError(f"cannot open storage {storage!r}: {reason}") from None


def load_study(storage: str, name: str | None = None) -> optuna.Study:
    """Load the existing study ``name`` from ``storage``; with ``name=None`` the storage must hold exactly one.

    Raises:
        StudyError: storage unreachable, or no such study (the message lists the stored ones).
    """
    storage_obj = open_storage(storage)
    try:
        names = optuna.get_all_study_names(storage=storage_obj)
    except Exception as exc:  # noqa: BLE001 - e.g. a file that is not a database
        raise StudyError(f"cannot open storage {storage!r}: {str(exc).splitlines()[0]}") from None
    if name is None:
        if len(names) != 1:
            raise StudyError(f"give --study NAME; the storage holds {', '.join(names) or 'no studies'}")
        name = names[0]
    if name not in names:
        raise StudyError(f"no study {name!r} in {storage}; stored: {', '.join(names) or 'none'}")
    return optuna.load_study(study_name=name, storage=storage_obj)


#: Dataset facts recorded since a later version: a study stored without them is not a different dataset.
_ADDED_DATASET_KEYS = ("mean", "std", "class_names")


def _comparable(key: str, value: Any, stored: Any = None) -> Any:
    """``value`` as JSON would round-trip it; for ``dataset_info``, without the keys ``stored`` lacks among
    :data:`_ADDED_DATASET_KEYS` (an mnist5k study from before its normalization was recorded resumes)."""
    value = json.loads(json.dumps(value))
    if key == "dataset_info" and isinstance(value, dict) and isinstance(stored, dict):
        value = {k: v for k, v in value.items() if k in stored or k not in _ADDED_DATASET_KEYS}
    return value


def open_study(
    name: str,
    storage: str,
    objectives: list[Objective],
    constraints: list[Constraint],
    sampler: str,
    seed: int,
    settings: dict[str, Any],
) -> optuna.Study:
    """Create or load the study; check a loaded study was made with the same settings.

    ``settings`` (space, bounds, dataset, objectives, ...) are stored as study user attributes on
    creation. On resume, a setting that differs (e.g. another dataset) is an error: datasets and
    objectives are fixed per study. The sampler is re-seeded with ``seed + len(study.trials)`` so a
    restarted seeded sampler does not replay the same points.
    """
    storage_obj = open_storage(storage)
    directions = [o.direction for o in objectives]
    existing = None
    try:
        existing = optuna.load_study(study_name=name, storage=storage_obj)
    except KeyError:
        pass
    n_trials = len(existing.trials) if existing else 0
    smp = make_sampler(sampler, seed + n_trials)
    if existing is not None:
        stored = existing.user_attrs
        for key, value in settings.items():
            if key in stored and _comparable(key, stored[key]) != _comparable(key, value, stored[key]):
                raise StudyError(
                    f"study {name!r} exists with {key}={stored[key]!r}, not {value!r}: settings are "
                    f"fixed per study; use another --study name"
                )
        if list(existing.directions) != [optuna.study.StudyDirection.MINIMIZE if d == "minimize"
                                        else optuna.study.StudyDirection.MAXIMIZE for d in directions]:
            raise StudyError(f"study {name!r} exists with other objective directions")
    study = optuna.create_study(
        study_name=name, storage=storage_obj, directions=directions, sampler=smp, load_if_exists=True
    )
    if existing is None:
        for key, value in settings.items():
            study.set_user_attr(key, value)
        with warnings.catch_warnings():  # experimental in Optuna 5, needed by the dashboard
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([o.key for o in objectives])
    return study


def export_trials(study: optuna.Study, path: str | Path) -> Path:
    """Write every trial (all states, params, values, user attributes) to CSV with pandas, atomically
    (a temporary file of this process's own, so drivers sharing the study can export at once)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df = study.trials_dataframe(multi_index=False)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(path)
    return path
