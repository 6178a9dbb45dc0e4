"""``python -m nas reproduce``: the source papers' claims re-measured, each with a verdict.

One registered protocol per claim (:mod:`nas.reproduce.protocols`, registry in
:mod:`nas.reproduce.registry`). :func:`run_claims` runs the chosen claims, writes one JSON and one figure
per claim as it finishes (a rerun with the same settings skips the claims already done), then the
verdict table as ``reproduce.csv``, ``reproduce.json`` and ``reproduce.html`` (one figure per claim).
"""

from __future__ import annotations

import base64
import html
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from . import protocols  # noqa: F401 - registers the claims
from .context import Context
from .registry import CLAIMS, VERDICTS, Claim, Measurement, verdict

__all__ = ["CLAIMS", "Context", "run_claims", "select_claims", "format_table", "COLUMNS"]

#: Start of the ``why`` of a claim whose protocol raised; such a claim is run again by the next run.
PROTOCOL_FAILED = "the protocol failed"

COLUMNS = ["claim", "paper", "section", "statement", "protocol", "n", "effect_name", "effect", "ci_low", "ci_high",
           "expect", "threshold", "verdict", "why", "seconds", "dataset", "seeds", "quick"]


def select_claims(names: Sequence[str]) -> list[str]:
    """Registry keys of ``names``: ``all``, exact keys, or prefixes such as ``000`` or ``004.high``.

    Raises:
        KeyError: a name matches no claim (the message lists the valid keys).
    """
    if not names or "all" in names:
        return list(CLAIMS)
    out: list[str] = []
    for name in names:
        hits = [k for k in CLAIMS if k == name or k.startswith(name + ".") or k.startswith(name)]
        if not hits:
            raise KeyError(f"no claim {name!r} (valid: all, a paper 000-004, or one of {', '.join(CLAIMS)})")
        out += [k for k in hits if k not in out]
    return out


def _settings(ctx: Context) -> dict[str, Any]:
    return {"dataset": ctx.dataset, "seeds": ctx.seeds, "quick": ctx.quick, "population": ctx.population}


def _figure(c: Claim, m: Measurement, path: Path) -> bool:
    if m.figure is None:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    try:
        m.figure(ax)
        ax.set_title(c.key, fontsize=9)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=90)
    finally:
        plt.close(fig)
    return True


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if hasattr(v, "item") and callable(v.item):
        return _clean(v.item())
    return v


def run_claims(keys: Sequence[str], ctx: Context, out_dir: str | Path,
               on_claim: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run the claims ``keys`` (registry order) and write the outputs to ``out_dir``; returns the rows.

    A claim whose ``claims/<key>.json`` exists with the same settings (dataset, seeds, quick,
    population) is read back instead of run again, unless its protocol failed (it is retried). ``on_claim(row)`` is called as each claim ends.
    """
    out = Path(out_dir)
    (out / "claims").mkdir(parents=True, exist_ok=True)
    ctx.out_dir = out
    rows = []
    for key in keys:
        c = CLAIMS[key]
        saved = out / "claims" / f"{key}.json"
        row = json.loads(saved.read_text()) if saved.exists() else None
        failed = row is not None and str(row.get("why", "")).startswith(PROTOCOL_FAILED)
        if row is None or failed or row.get("settings") != _settings(ctx):
            t0 = time.perf_counter()
            ctx.progress(f"{key}: running")
            try:
                m = c.fn(ctx)
                v, why = verdict(c, m)
                why = f"{why}; {m.note}" if m.note else why
            except Exception as exc:  # noqa: BLE001 - one broken protocol must not lose the others
                m = Measurement(float("nan"), float("nan"), float("nan"), 0, "protocol failed")
                v, why = "inconclusive", f"{PROTOCOL_FAILED}: {type(exc).__name__}: {str(exc)[:300]}"
            seconds = time.perf_counter() - t0
            try:
                has_figure = _figure(c, m, out / "figures" / f"{key}.png") if m.n else False
            except Exception as exc:  # noqa: BLE001 - a figure that cannot be drawn leaves the verdict
                has_figure = False
                why += f"; no figure ({type(exc).__name__}: {str(exc)[:100]})"
            row = {"claim": key, "paper": c.paper, "section": c.section, "statement": c.statement,
                   "protocol": c.protocol, "n": m.n, "effect_name": m.effect_name, "effect": m.effect,
                   "ci_low": m.ci_low, "ci_high": m.ci_high, "expect": c.expect, "threshold": c.threshold,
                   "verdict": v, "why": why, "seconds": round(seconds, 1), "dataset": ctx.dataset,
                   "seeds": ctx.seeds, "quick": ctx.quick, "samples": m.samples, "details": m.details,
                   "figure": f"figures/{key}.png" if has_figure else None, "settings": _settings(ctx)}
            row = _clean(row)
            tmp = saved.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(row, indent=1, default=str))
            tmp.replace(saved)
        rows.append(row)
        if on_claim:
            on_claim(row)
    _write_outputs(rows, out)
    return rows


def _num(v: Any, spec: str = "+.3f") -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The verdict table for the terminal."""
    head = ["claim", "n", "effect", "95% CI", "verdict", "time"]
    cells = [[r["claim"], str(r["n"]), _num(r["effect"]), f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]",
              r["verdict"], f"{r['seconds']:.0f}s"] for r in rows]
    widths = [max(len(x[i]) for x in [head] + cells) for i in range(len(head))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(x.ljust(w) for x, w in zip(cell, widths)) for cell in cells]
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    lines.append("")
    lines.append(", ".join(f"{n} {v}" for v, n in counts.items()) + f" of {len(rows)} claims")
    lines.append("effect: see reproduce.csv (effect_name) for each claim's effect and protocol; a claim is "
                 "replicated when its whole 95% CI lies on the predicted side, not replicated when the whole CI "
                 "lies on the other side, inconclusive otherwise.")
    return "\n".join(lines)


def _write_outputs(rows: Sequence[dict[str, Any]], out: Path) -> None:
    import csv

    tmp = out / "reproduce.csv.tmp"
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    tmp.replace(out / "reproduce.csv")
    tmp = out / "reproduce.json.tmp"
    tmp.write_text(json.dumps(list(rows), indent=1, default=str))
    tmp.replace(out / "reproduce.json")
    colour = {"replicated": "#d9f2d9", "not replicated": "#f7d4d4", "inconclusive": "#f2eed0"}
    parts = ["<!doctype html><meta charset='utf-8'><title>gradnas reproduce</title>",
             "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
             "table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;padding:3px 6px;"
             "vertical-align:top}img{max-width:520px}</style>",
             "<h1>Claims of the source papers, re-measured</h1>",
             "<p>Replicated: the whole 95% confidence interval of the effect lies on the side the claim predicts; "
             "not replicated: it lies on the other side; inconclusive: it contains the threshold (or too few "
             "samples).</p><table><tr><th>claim</th><th>paper, section</th><th>statement</th><th>n</th>"
             "<th>effect [95% CI]</th><th>verdict</th><th>time</th></tr>"]
    for r in rows:
        parts.append(f"<tr style='background:{colour.get(r['verdict'], '#fff')}'><td>{html.escape(r['claim'])}</td>"
                     f"<td>{html.escape(r['paper'])}, {html.escape(r['section'])}</td>"
                     f"<td>{html.escape(r['statement'])}</td><td>{r['n']}</td>"
                     f"<td>{_num(r['effect'])} [{_num(r['ci_low'])}, {_num(r['ci_high'])}]</td>"
                     f"<td>{html.escape(r['verdict'])}</td><td>{r['seconds']:.0f} s</td></tr>")
    parts.append("</table>")
    for r in rows:
        parts.append(f"<h2>{html.escape(r['claim'])}: {html.escape(r['verdict'])}</h2>"
                     f"<p><b>Claim</b> ({html.escape(r['paper'])}, {html.escape(r['section'])}): "
                     f"{html.escape(r['statement'])}.<br><b>Protocol</b>: {html.escape(r['protocol'])}.<br>"
                     f"<b>Effect</b>: {html.escape(r['effect_name'])} = {_num(r['effect'])} "
                     f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}], n = {r['n']}; expected "
                     f"{html.escape(r['expect'])} beyond {r['threshold']:g}. <b>Why</b>: {html.escape(r['why'])}.</p>")
        png = out / r["figure"] if r.get("figure") else None
        if png is not None and png.exists():
            data = base64.b64encode(png.read_bytes()).decode()
            parts.append(f"<img alt='{html.escape(r['claim'])}' src='data:image/png;base64,{data}'>")
    tmp = out / "reproduce.html.tmp"
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(out / "reproduce.html")
