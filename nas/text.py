"""Plain-text tables for the terminal, shared by the command line (nas/cli) and the reports (nas/report)."""

from __future__ import annotations

from typing import Any

__all__ = ["table", "fmt"]


def table(rows: list[list[Any]], header: list[str]) -> str:
    """``rows`` under ``header`` in left-aligned columns, with a dashed rule below the header."""
    cells = [[str(h) for h in header]] + [[fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fmt(v: Any) -> str:
    """A table cell: floats with 4 significant digits, anything else as ``str``."""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
