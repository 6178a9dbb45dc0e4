"""The report rendered: the self-contained HTML page (figures embedded as base64 PNG) and the text table
printed on the terminal."""

from __future__ import annotations

import base64
import collections
import html
from pathlib import Path
from typing import Any

from .gather import ReportData
from .stats import ACCURACY, ALPHA, CONVERGED, finite_or_none

__all__ = ["render_html", "terminal_table"]


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _signed3(v: float) -> str:
    """``+0.123``; never ``-0.000``."""
    text = f"{v:+.3f}"
    return "+0.000" if text == "-0.000" else text


def terminal_table(rows: list[dict[str, Any]], k_note: str) -> str:
    """The correlation table (subset ``all``) as aligned text for the terminal."""
    by_key: dict[str, dict[str, dict[str, Any]]] = collections.OrderedDict()
    for r in rows:
        if r["subset"] == "all":
            by_key.setdefault(r["metric"], {})[r["target"]] = r

    def corr(r: dict[str, Any], stat: str) -> str:
        if r[stat] is None:
            return "undefined"
        return _signed3(r[stat]) + (" ns" if r["kendall_p"] > ALPHA else "")

    # convergence undefined for every metric (too few trials, or the same flag on all): its columns say
    # nothing, one line says why instead
    conv_notes = {d[CONVERGED]["note"].replace("undefined: ", "") for d in by_key.values()
                  if d[CONVERGED]["kendall_tau"] is None}
    conv_constant = bool(by_key) and all(d[CONVERGED]["kendall_tau"] is None for d in by_key.values())
    header = ["metric", "role", "dir", "n", "tau(acc)", "p", "rho(acc)", "tau(conv)", "p", "top-k"]
    lines = []
    for key, d in by_key.items():
        a, c = d[ACCURACY], d[CONVERGED]
        role = "objective" if a["optimized"] else ("constraint" if a["constrained"] else "")
        topk = "undefined" if a["topk_hits"] is None else f"{a['topk_hits']}/{a['topk_k']}"
        lines.append([key, role, "min" if a["direction"] == "minimize" else "max", str(a["n"]),
                      corr(a, "kendall_tau"), _fmt(a["kendall_p"], 2), corr(a, "spearman_rho"),
                      corr(c, "kendall_tau"), _fmt(c["kendall_p"], 2), topk])
    keep = [i for i in range(len(header)) if not (conv_constant and i in (7, 8))]
    cells = [[r[i] for i in keep] for r in [header] + lines]
    widths = [max(len(r[i]) for r in cells) for i in range(len(keep))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    if conv_constant:
        why = "; ".join(sorted(n.replace("target constant", "every validated trial has the same convergence flag")
                               for n in conv_notes))
        out.append(f"tau(conv) left out: undefined for every metric ({why})")
    return "\n".join(out)


def legend(k: int | None) -> str:
    """What the terminal table's columns mean (printed under it)."""
    kk = f"k = {k}" if k is not None else "k = n/4 rounded down, at least 1 (set with --top-k)"
    return "\n".join([
        "columns: role = objective or constraint of the search (blank: only measured); dir = the direction the "
        "metric is ranked in (its paper's; a negative tau says the opposite direction ranks accuracy better);",
        "  n = validated trials with a value; tau(acc) / rho(acc) = Kendall tau / Spearman rho of the metric, in "
        "its direction, against validated accuracy (+1: it orders the trials exactly as accuracy does);",
        "  p = Kendall's two-sided p-value (ns: p > 0.05); tau(conv) = Kendall tau against convergence (1 when the "
        "trial's final train loss is below 0.5 ln(classes), else 0);",
        f"  top-k = hits/k: how many of the metric's k best trials are among the k most accurate ({kk}); a random "
        "ranking hits k*k/n on average.",
    ])


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:0.6em 0;font-size:0.85em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f0f0f0} td.l,th.l{text-align:left}
.ns{color:#999} .undef{color:#b36b00;font-style:italic} .opt{font-weight:bold}
img{max-width:100%;border:1px solid #ddd;margin:0.4em 0}
.note{background:#f7f7f2;border-left:4px solid #c9c28f;padding:0.5em 1em;font-size:0.9em}
"""


def _cell(r: dict[str, Any], stat: str, p: str) -> str:
    if r[stat] is None:
        return f'<td class="undef">undefined</td><td class="undef">{html.escape(r["note"].replace("undefined: ", ""))}</td>'
    ns = r["kendall_p"] > ALPHA  # significance judged by Kendall's p (exact for small n without ties)
    cls = ' class="ns"' if ns else ""
    return f"<td{cls}>{_signed3(r[stat])}{' ns' if ns else ''}</td><td{cls}>{r[p]:.2g}</td>"


def _html_table(rows: list[dict[str, Any]], subset: str) -> str:
    pick = collections.OrderedDict()
    for r in rows:
        if r["subset"] == subset:
            pick.setdefault(r["metric"], {})[r["target"]] = r
    out = ['<table><tr><th class="l">metric</th><th>phase</th><th>better</th><th>n</th>'
           "<th>τ vs acc</th><th>p</th><th>ρ vs acc</th><th>p</th><th>τ vs converged</th><th>p</th>"
           "<th>ρ vs converged</th><th>p</th><th>top-k hits</th><th>chance k/n</th></tr>"]
    for key, d in pick.items():
        a, c = d[ACCURACY], d[CONVERGED]
        cls = ' class="l opt"' if a["optimized"] else ' class="l"'
        tag = " (objective)" if a["optimized"] else (" (constraint)" if a["constrained"] else "")
        topk = ('<td class="undef">undefined</td><td>–</td>' if a["topk_hits"] is None else
                f"<td>{a['topk_hits']}/{a['topk_k']}</td><td>{a['topk_chance']:.2f}</td>")
        out.append(
            f"<tr><td{cls}>{html.escape(key + tag)}</td><td>{a['phase']}</td><td>{a['direction'][:3]}</td>"
            f"<td>{a['n']}</td>{_cell(a, 'kendall_tau', 'kendall_p')}{_cell(a, 'spearman_rho', 'spearman_p')}"
            f"{_cell(c, 'kendall_tau', 'kendall_p')}{_cell(c, 'spearman_rho', 'spearman_p')}{topk}</tr>")
    out.append("</table>")
    return "\n".join(out)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}"><figcaption>{html.escape(path.name)}</figcaption></figure>'


def render_html(data: ReportData, rows: list[dict[str, Any]], plots: list[Path], k_note: str, climb: str = "",
                left_out: str = "") -> str:
    """The self-contained ``report.html``: settings, counts, the budget search's climb (``climb``: its
    text, preformatted), correlation tables (``left_out``: the constant keys not in them), figures (PNG as
    base64), validated trials."""
    s = data.study
    settings = {k: s.user_attrs.get(k) for k in ("space", "bounds", "dataset", "objectives", "constraints", "seed",
                                                 "early_steps", "probe_size")}
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>gradnas report: {esc(s.study_name)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>Validation report: {esc(s.study_name)}</h1>",
             "<table>" + "".join(f'<tr><th class="l">{esc(k)}</th><td class="l">{esc(str(v))}</td></tr>'
                                 for k, v in settings.items()) + "</table>",
             "<h2>Trials</h2><table>" + "".join(f'<tr><th class="l">{esc(k)}</th><td>{v}</td></tr>'
                                                for k, v in data.counts.items()) + "</table>"]
    if data.fail_reasons:
        parts.append("<h3>Failed trials by reason</h3><table><tr><th>count</th><th class='l'>reason</th></tr>" +
                     "".join(f"<tr><td>{n}</td><td class='l'>{esc(r)}</td></tr>" for r, n in data.fail_reasons) +
                     "</table>")
    if climb:
        parts.append(f"<h2>Budget search: the climb</h2><pre>{esc(climb.strip())}</pre>")
    n_used = len(data.validated)
    parts.append(
        "<div class='note'><p><b>How to read this.</b> n = validated trials with a finite value of both columns "
        f"(here at most {n_used}; validation: {data.epochs} epoch(s)). τ = Kendall tau-b, ρ = Spearman rho, "
        "two-sided p-values from scipy.stats; <span class='ns'>grey 'ns'</span>: Kendall's p &gt; 0.05 (not "
        "significant; Kendall's p is exact for small samples, Spearman's is a t approximation that is "
        "unreliable below n ≈ 10 — e.g. 0 for a perfect rank order of 3 trials). "
        "<span class='undef'>undefined</span>: n &lt; 3 or a column constant over the trials (reported as such, "
        "never as 0). Accuracy = best test accuracy over the epochs (val_best_acc). "
        "<b>Converged</b> = not diverged and final-epoch train loss &lt; 0.5·ln(number of classes). "
        f"<b>Top-k</b>: k = {esc(k_note)}; hits = how many of the k best trials by the metric (in its better "
        "direction) are among the k most accurate; 'chance' = k/n, the expected rate of a random ranking. "
        "Diverged trainings stay in the correlations with the accuracy of their diverged weights. "
        "The front and top trials are not a random sample: see the 'random' table, when present, for an "
        "unbiased estimate.</p></div>")
    parts.append("<h2>Correlations with full-training results (all validated trials)</h2>")
    parts.append(_html_table(rows, "all"))
    if left_out:
        parts.append(f"<p>{esc(left_out.strip())}</p>")
    if any(r["subset"] == "random" for r in rows):
        parts.append("<h2>Randomly chosen trials only</h2>")
        parts.append(_html_table(rows, "random"))
    parts.append("<h2>Figures</h2>")
    for p in plots:
        parts.append(_img(p, p.stem))
    # validated trials
    names = data.objectives
    parts.append("<h2>Validated trials</h2><table><tr><th>trial</th><th>selected by</th>" +
                 "".join(f"<th>{esc(n)}</th>" for n in names) +
                 "<th>best acc</th><th>final acc</th><th>final train loss</th><th>epochs to 90%</th>"
                 "<th>converged</th><th>diverged</th><th class='l'>config</th></tr>")
    for t in sorted(data.validated, key=lambda t: -(finite_or_none(t.user_attrs.get(ACCURACY)) or -1)):
        a = t.user_attrs
        cfg = a.get("config") or {}
        brief = ", ".join(f"{k}={_fmt(v)}" for k, v in cfg.items() if k in t.params)
        parts.append(
            f"<tr><td>{t.number}</td><td>{esc(str(a.get('val_selected_by')))}</td>" +
            "".join(f"<td>{_fmt(v)}</td>" for v in (t.values or [])) +
            f"<td>{_fmt(a.get(ACCURACY))}</td><td>{_fmt(a.get('val_final_acc'))}</td>"
            f"<td>{_fmt(a.get('val_final_train_loss'))}</td><td>{_fmt(a.get('val_epochs_to_90'))}</td>"
            f"<td>{_fmt(a.get(CONVERGED))}</td><td>{_fmt(a.get('val_diverged'))}</td>"
            f"<td class='l'>{esc(brief)}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)
