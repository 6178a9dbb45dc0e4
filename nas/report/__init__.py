"""The validation report: how well each stored metric predicted full-training results.

``python -m nas report --study NAME`` writes, under ``runs/NAME/``:

* ``correlations.csv``: one row per (metric key, target, subset) with Kendall's tau-b and Spearman's
  rho (``scipy.stats.kendalltau`` / ``spearmanr``: value, two-sided p-value, n) of every numeric
  value stored on the trials — each registered metric at initialization (``<m>``) and after the early
  steps (``<m>@early``), and the derived values ``loss_init``, ``loss_early``, ``loss_drop``,
  ``train_loss_first``, ``train_loss_last``, ``train_kappa_w``, ``params``, ``flops`` — against the
  validated accuracy (``val_best_acc``) and against the convergence flag (``val_converged`` as 0/1;
  see :mod:`nas.validate` for the rule); plus the top-k hit rate against accuracy;
* ``plots/*.png`` (matplotlib, Agg): ``pareto.png`` (the optimized objectives, pairwise for more than
  two, the front highlighted, validated trials coloured by accuracy), ``scatter_<key>.png`` for each
  optimized objective against accuracy, ``convergence_<key>.png`` for each constrained key (its value
  against accuracy, coloured converged / not / diverged, with the constraint line), ``scatter_all.png``
  (every metric against accuracy) and ``curves.png`` (per-epoch test accuracy and train loss);
* ``report.html``: everything above in one self-contained file (the PNGs embedded as base64 data),
  viewable offline.

After a budget search the report starts with its climb (:mod:`~nas.report.climb`): per rung how many
candidates were planned, entered, finished and failed, what promoted them, and Kendall's tau (with n) of
each rung's promotion score against the accuracy its candidates reached next; when n is too small to
judge it says so and suggests ``python -m nas validate --top K`` to train more candidates; after a
``--calibrate`` search, what the rung-0 score learned from the study's labels (:mod:`~nas.report.calibration`).

Rules:

* Keys: every registered metric and derived value stored on the trials, and the study's objectives and
  constrained keys (e.g. ``relative_step``); a key with the same value on every complete trial (``params``
  of a fixed architecture, ``loss_drop`` = 0 when no early steps ran) carries no information: it is left
  out of the table and named under it.
* n: the validated trials with a finite value of both columns. A correlation is **undefined** (empty
  cells, a note saying why) when n < 3, or when either column is constant over those trials — never 0.
  Correlations whose Kendall p > 0.05 are marked ``ns`` (Kendall's p is exact for small n without
  ties; Spearman's t-based p, kept in the CSV, is unreliable below n ≈ 10); with small n most are.
* top-k hit rate: ``k = max(1, n // 4)`` (or ``--k``); the metric's top k are the k best trials by the
  metric in its better direction (the registry's direction; ``loss_*``/``train_loss_*``/
  ``train_kappa_w`` lower is better, ``loss_drop`` higher is better), the true top k are the k most
  accurate (ties broken by trial number); the rate is hits / k, to compare with k / n expected by
  chance.
* Subsets: ``all`` validated trials (front and random together), and ``random`` (the randomly chosen
  ones only, an unbiased sample of the study) when at least 3 of them and other validated trials exist.
* Validations made with another number of epochs than the report's are left out and counted. Failed
  trials, trials never validated, failed validations and diverged trainings are counted (diverged
  trainings stay in the correlations with the accuracy their diverged weights reach).

Modules: :mod:`~nas.report.stats` (correlations, orientation, top-k, mean rank: the numbers, shared with
the benchmarks), :mod:`~nas.report.gather` (trials, validation results, counts), :mod:`~nas.report.climb`
(a budget search's rungs), :mod:`~nas.report.calibration` (its in-study calibration), :mod:`~nas.report.plots`,
:mod:`~nas.report.html` (the page and the terminal table); this file writes them (:func:`write_report`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import optuna

from ..search.keys import StudyFolder
from ..validate import study_settings
from .calibration import calibration_text
from .climb import climb, climb_text
from .gather import gather
from .html import legend, render_html, terminal_table
from .plots import write_plots
from .stats import (
    ACCURACY, ALPHA, COLUMNS, CONVERGED, DERIVED_DIRECTIONS, MIN_N, constant_keys, correlate, correlation_table,
    duplicate_keys,
    key_direction, metric_keys, topk_hits,
)

__all__ = [
    "ReportError", "ReportResult", "DERIVED_DIRECTIONS", "ACCURACY", "CONVERGED", "correlate", "topk_hits",
    "metric_keys", "key_direction", "correlation_table", "write_report",
]


class ReportError(ValueError):
    """Bad report options; one line."""


@dataclasses.dataclass
class ReportResult:
    """What :func:`write_report` wrote and what it says."""

    html: Path
    csv: Path
    plots_dir: Path
    plots: list[Path]
    table: Any  # pandas.DataFrame of correlations.csv
    counts: dict[str, Any]
    text: str


def write_report(study: optuna.Study, out_dir: str | Path, epochs: int | None = None,
                 k: int | None = None) -> ReportResult:
    """Compute the correlations and write ``report.html``, ``correlations.csv`` and ``plots/*.png``.

    Args:
        study: a study made by ``python -m nas search`` (validated or not).
        out_dir: ``runs/<study>``.
        epochs: use validations made with this many epochs (default: the most common).
        k: k of the top-k hit rate (default ``max(1, n // 4)``).

    Raises:
        ReportError: ``k`` < 1. (:class:`nas.validate.ValidationError` for a study without search settings.)
    """
    import pandas as pd

    if k is not None and k < 1:
        raise ReportError(f"--k must be >= 1, got {k}")
    study_settings(study)  # raises for a study the search did not make
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = gather(study, epochs)
    used = data.validated
    con_keys = [c.key for c in data.constraints]
    keys = metric_keys(used if used else data.complete, include=[*data.objectives, *con_keys])
    constant = constant_keys(data.complete, keys)  # the same on every trial: nothing to rank by
    keys = [key for key in keys if key not in constant]
    duplicate = {key: other for key, other in duplicate_keys(data.complete, keys).items()  # e.g. loss_early =
                 if key not in data.objectives}  # loss_init when the early rung was skipped; objectives stay
    keys = [key for key in keys if key not in duplicate]
    rows = correlation_table(used, keys, data.objectives, con_keys, k, "all")
    randoms = [t for t in used if t.user_attrs.get("val_selected_by") == "random"]
    if len(randoms) >= MIN_N and len(randoms) < len(used):
        rows += correlation_table(randoms, keys, data.objectives, con_keys, k, "random")
    table = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("n", "topk_k", "topk_hits"):
        table[col] = table[col].astype("Int64")
    csv = out_dir / "correlations.csv"
    tmp = csv.with_suffix(".csv.tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(csv)
    k_note = f"{k}" if k is not None else "n/4"
    plots = write_plots(data, out_dir / "plots")
    page = StudyFolder(out_dir).report
    tmp = page.with_suffix(".html.tmp")
    the_climb = climb(study, data.trials, used)
    climb_part = "" if the_climb is None else climb_text(the_climb, study.study_name) + "\n\n"
    calibrated = calibration_text(study)  # the budget search's in-study calibration, when it ran
    climb_part += "" if calibrated is None else calibrated + "\n\n"
    left_out = (f"left out (the same value on every complete trial): "
                f"{', '.join(f'{key} = {value:g}' for key, value in constant.items())}\n" if constant else "")
    if duplicate:
        left_out += (f"left out (equal to another column on every complete trial): "
                     f"{', '.join(f'{key} = {other}' for key, other in duplicate.items())}\n")
    tmp.write_text(render_html(data, rows, plots, k_note, climb_part, left_out), encoding="utf-8")
    tmp.replace(page)
    counts = "\n".join(f"  {name}: {value}" for name, value in data.counts.items())
    text = (f"study {study.study_name!r}: {len(data.trials)} trial(s)\n{counts}\n"
            + ("".join(f"  FAIL x{n}: {r}\n" for r, n in data.fail_reasons)) + "\n" + climb_part
            + f"Correlation with validated accuracy ({ACCURACY}) and convergence over n validated trials "
              f"(ns: Kendall p > {ALPHA}; undefined: n < {MIN_N} or a constant column):\n"
            + terminal_table(rows, k_note) + "\n" + left_out + legend(k))
    return ReportResult(html=page, csv=csv, plots_dir=out_dir / "plots", plots=plots, table=table,
                        counts=data.counts, text=text)
