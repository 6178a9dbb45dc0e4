"""What the CLI prints for people: aligned tables, number formats, prose wrapped to the terminal, and the
best trained trial (validate, report)."""

from __future__ import annotations

from typing import Any

from ..text import fmt, table

__all__ = ["table", "fmt", "terminal_width", "table_with_text", "say", "print_best_validated"]


def terminal_width() -> int:
    """The terminal's width, kept between 100 and 200 columns (160 when not a terminal)."""
    import shutil

    return max(100, min(200, shutil.get_terminal_size((160, 24)).columns))


def table_with_text(rows: list[list[Any]], header: list[str], texts: list[str], title: str, width: int) -> str:
    """A table whose last column is free text, kept within ``width`` columns.

    When the fixed columns leave room for at least 30 characters the text is the last column, cut with '…';
    otherwise each row is followed by its text on an indented line of its own.
    """
    def cut(text: str, room: int) -> str:
        return text if len(text) <= room else text[:room - 1] + "…"

    fixed = table(rows, header).splitlines()
    room = width - max(len(line) for line in fixed) - 2
    if room >= 30:
        return table([r + [cut(t, room)] for r, t in zip(rows, texts)], header + [title])
    out = fixed[:2]
    for line, text in zip(fixed[2:], texts):
        out += [line, "    " + cut(text, width - 4)]
    return "\n".join(out)


def say(text: str) -> None:
    """Print prose wrapped to the terminal's width (leading blank lines kept)."""
    import textwrap

    stripped = text.lstrip("\n")
    print("\n" * (len(text) - len(stripped)) + textwrap.fill(stripped, terminal_width()))


def print_best_validated(study) -> bool:
    """Print the best trained trial (:func:`nas.search.ranking.best_trained`: final test accuracy, ties by
    fewer parameters); False when no trial is validated."""
    from ..search.ranking import best_trained
    from ..validate import validation_results

    results = validation_results(study)
    params = {t.number: t.user_attrs.get("params") for t in study.get_trials(deepcopy=False)}
    n = best_trained({k: {**r, "params": params.get(k)} for k, r in results.items()})
    if n is None:
        return False
    r = results[n]
    if r.get("val_task") == "regression":  # a regression loss: no accuracy, ranked by the test loss
        print(f"best trained trial: {n}, final test loss {fmt(r.get('val_final_test_loss'))} after "
              f"{r.get('val_epochs')} epoch(s) (regression: no accuracy)")
        return True
    print(f"best trained trial: {n}, final test accuracy {r['val_final_acc']:.4f} (best epoch "
          f"{fmt(r.get('val_best_acc'))}) after {r.get('val_epochs')} epoch(s)")
    return True
