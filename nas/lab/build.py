"""The resumable population table: settings, the rows on disk, which jobs are left, merging their results.

The table (CSV, ``.csv.gz`` compressed): one row per config: ``index``, ``seed``, ``config`` (JSON),
``settings`` (JSON: everything the values depend on, :func:`settings_of`), every metric and derived value,
accuracies, convergence, repeat accuracy, timings (``time_*``, seconds). It is rewritten atomically
(temporary file + ``os.replace``) after every finished job, so a run can be stopped at any time; rerunning
with the same table skips finished jobs (a table made with other settings is refused; ``retry_failed``
reruns configs whose scoring or training failed), and metrics registered later are filled into finished
rows (a ``fill`` job, :mod:`nas.lab.population`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
from tqdm import tqdm

from nas.report.stats import is_blank, is_true

from .keys import FORMAT, ID_COLUMNS, proxy_keys
from .population import Job, run_job

__all__ = ["TableError", "settings_of", "load_table", "save_table", "finished", "read_rows", "plan_jobs",
           "apply_result", "run_jobs"]


class TableError(ValueError):
    """A table that is not a population table, or one made with other settings or configs."""


def settings_of(space: str, dataset: str, bounds: dict[str, Any], epochs: int, early_steps: int, long_steps: int,
                long_metrics: bool, seed: int, probe_size: int, metrics: Sequence[str]) -> dict[str, Any]:
    """The settings every value of a row depends on (stored as JSON in each row's ``settings``)."""
    return {"format": FORMAT, "space": space, "dataset": dataset, "bounds": bounds,
            "epochs": epochs, "early_steps": early_steps, "long_steps": long_steps,
            **({"long_metrics": True} if long_metrics else {}),
            "seed": seed, "probe_size": probe_size, "metrics": sorted(metrics)}


def load_table(path: str | Path) -> pd.DataFrame:
    """The saved table (``index`` as a column), or an empty frame when the file does not exist.

    Raises:
        TableError: the file is not a population table.
    """
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=list(ID_COLUMNS))
    df = pd.read_csv(path)
    missing = [c for c in ("index", "config", "settings") if c not in df.columns]
    if missing:
        raise TableError(f"{path} is not a table of this script (no column(s) {missing})")
    return df


def _column_order(columns: Sequence[str]) -> list[str]:
    cols = list(dict.fromkeys(columns))
    first = [c for c in ID_COLUMNS if c in cols]
    metrics = proxy_keys(cols)
    results = [c for c in cols if c.startswith(("val_", "rep_")) and c not in first]
    times = sorted(c for c in cols if c.startswith("time_"))
    rest = [c for c in cols if c not in set(first) | set(metrics) | set(results) | set(times)]
    return first + metrics + rest + results + times


def save_table(path: str | Path, rows: dict[int, dict[str, Any]]) -> None:
    """Write the rows (sorted by index) atomically: temporary file + ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame([rows[i] for i in sorted(rows)])
    df = df[_column_order(df.columns)]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    df.to_csv(tmp, index=False, compression="gzip" if path.suffix == ".gz" else None)
    os.replace(tmp, path)


def finished(df: pd.DataFrame, n: int | None = None) -> pd.DataFrame:
    """Rows (of the first ``n`` configs) whose main job finished, sorted by index."""
    if df.empty:
        return df
    out = df[df["main_done"].map(is_true)] if "main_done" in df.columns else df.iloc[0:0]
    if n is not None:
        out = out[out["index"].astype(int) < n]
    return out.sort_values("index").reset_index(drop=True)


def read_rows(table: pd.DataFrame, settings: dict[str, Any], configs: Sequence[dict[str, Any]],
              name: str | Path) -> dict[int, dict[str, Any]]:
    """index -> row (blank cells as None) of a saved table made with ``settings`` (its metrics may differ)
    and the sampled ``configs``.

    Raises:
        TableError: a row made with other settings, or holding another config than the one sampled now.
    """
    rows: dict[int, dict[str, Any]] = {}
    for rec in table.to_dict("records"):
        i = int(rec["index"])
        theirs = json.loads(rec["settings"])
        diff = sorted(k for k in set(theirs) | set(settings) if k != "metrics" and theirs.get(k) != settings.get(k))
        if diff:
            raise TableError(f"{name} was made with other settings ({', '.join(diff)}); use another --out")
        if i < len(configs) and json.loads(rec["config"]) != configs[i]:
            raise TableError(f"config {i} in {name} is not the one sampled now; use another --out")
        rows[i] = {k: (None if is_blank(v) else v) for k, v in rec.items()}
    return rows


def _needs_retry(row: dict[str, Any]) -> bool:
    return (row.get("eval_status") == "failed" or not is_blank(row.get("train_error"))
            or not is_blank(row.get("long_error")))


def plan_jobs(configs: Sequence[dict[str, Any]], rows: dict[int, dict[str, Any]], settings_text: str,
              n_repeat: int, retry_failed: bool, seed: int, metrics: Sequence[str], **fields: Any) -> list[Job]:
    """The jobs left: a main job for each config not finished (``retry_failed``: or failed), a fill job
    for each finished one missing some of ``metrics``, a repeat job for each of the first ``n_repeat``
    not trained twice. Config i gets seed ``seed + i``; ``fields``: the other :class:`Job` fields.
    A failed config missing metrics is marked as holding them (nothing can be measured on it)."""
    jobs: list[Job] = []
    for i, config in enumerate(configs):
        base = dict(index=i, config=config, metrics=list(metrics), seed=seed + i, data_seed=seed, **fields)
        row = rows.get(i, {})
        if not is_true(row.get("main_done")) or (retry_failed and _needs_retry(row)):
            jobs.append(Job(kind="main", **base))
        else:  # metrics added since this config was scored: measure just those
            scored = set(json.loads(row["settings"]).get("metrics", []))
            missing = [m for m in metrics if m not in scored]
            if missing and row.get("eval_status") != "failed":
                jobs.append(Job(kind="fill", **{**base, "metrics": missing}))
            elif missing:  # nothing can be measured on a config whose early steps fail
                row["settings"] = settings_text
        rep_todo = not is_true(row.get("rep_done")) or (retry_failed and not is_blank(row.get("rep_error")))
        if i < n_repeat and rep_todo:
            jobs.append(Job(kind="repeat", **base))
    return jobs


def apply_result(rows: dict[int, dict[str, Any]], job: Job, status: str, payload: Any, settings_text: str) -> bool:
    """Merge one finished job (an executor's ``(status, payload)``) into its row; whether it had a problem
    (a failed scoring, training or fill, or the worker itself failed: retried by the next run)."""
    row = rows.setdefault(job.index, {})
    earlier = row.get("settings")  # the metrics a row holds: updated by main and fill jobs only
    row.update(index=job.index, seed=job.seed, config=json.dumps(job.config), settings=settings_text)
    if earlier and (job.kind == "repeat" or job.kind == "fill" and (status != "ok" or payload.get("fill_error"))):
        row["settings"] = earlier
    if status == "ok" and job.kind == "fill":
        errors = json.loads(row.get("metric_errors") or "{}")
        errors.update(payload.pop("fill_errors", {}))
        row.update(payload, metric_errors=json.dumps(errors, sort_keys=True) if errors else None)
        return bool(payload.get("fill_error"))
    if status == "ok":
        if job.kind == "main":  # a rerun replaces the whole main part
            for key in [key for key in row if not key.startswith(("rep_", "time_repeat"))]:
                if key not in ("index", "seed", "config", "settings"):
                    del row[key]
        row.update(payload)
        if job.kind == "main":
            return payload.get("eval_status") != "ok" or bool(payload.get("train_error"))
        return bool(payload.get("rep_error"))
    key = {"main": "train_error", "repeat": "rep_error", "fill": "fill_error"}[job.kind]
    row[key] = f"worker: {payload}"
    return True


def run_jobs(jobs: Sequence[Job], rows: dict[int, dict[str, Any]], out: str | Path, workers: int,
             settings_text: str, progress: bool = True) -> int:
    """Run ``jobs`` on ``workers`` (Ray when > 1) through the search's executor loop (:func:`nas.search.executor.run_jobs`), merging each result into
    ``rows`` and saving the table after every one; the number of jobs with a problem. Ctrl-C propagates
    (finished jobs are saved)."""
    from nas.search.executor import make_executor, run_jobs as run_on

    workers = min(workers, len(jobs))
    executor = make_executor(workers, run_job)
    bar = tqdm(total=len(jobs), desc="jobs", unit="job", disable=not progress, dynamic_ncols=True)
    problems = 0

    def handle(k: int, status: str, payload: Any, seconds: float) -> None:  # noqa: ARG001
        nonlocal problems
        problems += int(apply_result(rows, jobs[k], status, payload, settings_text))
        save_table(out, rows)
        bar.update(1)
        bar.set_postfix(problems=problems, refresh=False)

    try:
        run_on(executor, workers, list(enumerate(jobs)), handle)
    finally:
        bar.close()
        executor.shutdown()
    return problems
