"""The rendered report (nas/report/html.py): the terminal table, and an HTML page whose images exist."""

from __future__ import annotations

import base64
from html.parser import HTMLParser


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])


def test_terminal_table_shows_undefined_correlations(reported):
    out = reported.out
    assert "undefined" in out and "confusion" in out


def test_html_embeds_every_plot_as_a_png(reported):
    folder = reported.folder
    plots = {p.name for p in (folder / "plots").glob("*.png")}
    parser = _Images()
    parser.feed((folder / "report.html").read_text(encoding="utf-8"))
    assert len(parser.srcs) >= len(plots)
    for src in parser.srcs:
        if src.startswith("data:"):
            head, payload = src.split(",", 1)
            assert head == "data:image/png;base64"
            assert base64.b64decode(payload).startswith(b"\x89PNG\r\n\x1a\n")
        else:
            assert (folder / src).is_file(), src


def test_terminal_table_headers_are_each_explained_below_it(reported):
    out = reported.out
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("metric ") and "tau(acc)" in line)
    headers = lines[at].split()
    legend = "\n".join(lines[at + 2:])
    assert "max(1, n//4)" not in out
    for h in headers[1:]:  # every column but the metric's name is defined in the legend
        assert f"{h} =" in legend or f"{h} /" in legend, h
