"""Figures of the report (nas/report/plots.py)."""

from __future__ import annotations


def test_report_writes_the_documented_plots(reported):
    folder = reported.folder
    plots = {p.name for p in (folder / "plots").glob("*.png")}
    assert {"pareto.png", "scatter_confusion.png", "scatter_diversity.png", "scatter_kappa_w.png",
            "convergence_rank_input.png", "curves.png"} <= plots
