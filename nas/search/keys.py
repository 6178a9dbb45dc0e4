"""Every name the search stores: trial and study attributes, and the files of a study's folder.

One module decides them, so the drivers (proxy search, budget search, validation), the report, the
dashboard and a resumed run read and write the same keys. Metric values are stored under their registry
key (``kappa_x``) at initialization and with :data:`EARLY_SUFFIX` after the early steps; the derived
values of one evaluation are listed in :data:`nas.evaluate.DERIVED_KEYS`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from objectives.combine import DERIVED

__all__ = [
    "CONFIG", "SEED", "THREADS", "RUNG", "FAIL_REASON", "FEASIBLE", "PRUNED_REASON", "RETRY_OF", "UNDEFINED",
    "EARLY_SUFFIX", "DERIVED_KEYS", "EARLY_RUNG_KEYS", "TRAINING_ONLY_KEYS", "score_key", "VALIDATION", "validation_key", "BUDGET_STATE", "CALIBRATION", "RUNG_DONE",
    "BRACKET", "StudyFolder",
]

# ---------------------------------------------------------------- trial user attributes
#: The sampled config (a JSON dict that rebuilds the model with the space).
CONFIG = "config"
#: The trial's model seed (the number of its first attempt: a retry keeps it).
SEED = "seed"
#: Torch threads the trial ran with (fixed per study).
THREADS = "threads"
#: Budget search: the last rung the candidate reached (``init``, ``early``, ``short``, ``full``).
RUNG = "rung"
#: Budget search: the last rung whose job the candidate finished (index 0..3; resume skips it).
RUNG_DONE = "rung_done"
#: Budget search: the Hyperband bracket of the candidate (0: screened from rung 0; later: admitted at a training rung).
BRACKET = "bracket"
#: Why a trial failed (FAIL state).
FAIL_REASON = "fail_reason"
#: Whether every constraint is satisfied.
FEASIBLE = "feasible"
#: Why a trial was given back (PRUNED state: surplus of a shared study).
PRUNED_REASON = "pruned_reason"
#: Number of the failed trial this one retries (its config and seed are kept).
RETRY_OF = "retry_of_trial"
#: Objectives whose value was undefined (told as the worst of their direction).
UNDEFINED = "undefined_objectives"
#: Suffix of a metric measured after the early training steps.
EARLY_SUFFIX = "@early"
#: Values computed by every evaluation (:func:`nas.evaluate.evaluate`) besides the metrics: usable as
#: objectives and constraints (the combined score's derived features included, at init and after the steps).
DERIVED_KEYS = (
    "loss_init", "loss_early", "loss_drop", "train_loss_first", "train_loss_last", "train_kappa_w",
    "params", "flops", "time_data", "time_build", "time_score_init", "time_train", "time_score_early", "time_total",
    *DERIVED, *(f"{k}{EARLY_SUFFIX}" for k in DERIVED if k != "train_loss_smooth_min"),
)
#: Values of the budget search's early rung kept on the trial (the rest of its result repeats rung 0's).
EARLY_RUNG_KEYS = ("loss_curve", "loss_early", "loss_drop", "train_loss_first", "train_loss_last", "train_kappa_w",
                   "train_loss_smooth_min")
#: Values of a result that only training steps measure (``score`` hides them when nothing was trained).
TRAINING_ONLY_KEYS = (*EARLY_RUNG_KEYS, "time_train", "time_score_early")


def score_key(rung: str) -> str:
    """Budget search: the promotion score a candidate had after ``rung`` (``score@init``)."""
    return f"score@{rung}"


# ---------------------------------------------------------------- study user attributes
#: Prefix of a validation result (Optuna refuses attributes on finished trials: they live on the study).
VALIDATION = "validation:"


def validation_key(number: int) -> str:
    """The study attribute holding trial ``number``'s validation (full training) result."""
    return f"{VALIDATION}{number}"


#: Budget search: the plan, rung membership and promotions (what a rerun continues from).
BUDGET_STATE = "budget_state"
#: Budget search: what the in-study calibration of the rung-0 score learned (``nas.search.rung0``), last refit.
CALIBRATION = "gradnas:calibration"


# ---------------------------------------------------------------- the study's folder
@dataclasses.dataclass(frozen=True)
class StudyFolder:
    """``RUNS_DIR/STUDY/``: everything a search, validation and report write for one study."""

    root: Path

    @classmethod
    def of(cls, runs_dir: str | Path, study: str) -> "StudyFolder":
        return cls(Path(runs_dir) / study)

    @property
    def database(self) -> Path:
        return self.root / "study.db"

    @property
    def storage_url(self) -> str:
        """The SQLite URL of :attr:`database` (absolute: other processes may run elsewhere)."""
        return f"sqlite:///{self.database.resolve()}"

    @property
    def trials_csv(self) -> Path:
        return self.root / "trials.csv"

    @property
    def validation_csv(self) -> Path:
        return self.root / "validation.csv"

    @property
    def validate_log(self) -> Path:
        return self.root / "validate.log"

    @property
    def best_model(self) -> Path:
        return self.root / "best_model.pt"

    @property
    def best_model_json(self) -> Path:
        return self.root / "best_model.json"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    def diagnose(self, number: int) -> Path:
        """Where ``python -m nas diagnose --trial N`` writes its report of trial ``number``."""
        return self.root / "diagnose" / f"trial_{number}"

    def checkpoint(self, number: int) -> Path:
        """Trial ``number``'s training checkpoint (absolute: Ray workers on other nodes get the path)."""
        return (self.root / "checkpoints" / f"trial_{number}.pt").resolve()
