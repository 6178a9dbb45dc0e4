"""``python -m nas spaces [NAME]``: the registered search spaces, or one space's dimensions and documentation."""

from __future__ import annotations

import argparse

from .args import Command
from .common import open_space
from .output import fmt, table

__all__ = ["Spaces"]


class Spaces(Command):
    """List the registered search spaces, or show one space's dimensions."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("name", nargs="?", help="a space to describe: its dimensions, then its documentation "
                                               "(building rules, initialization, math) (default: list them all)")

    def take_action(self, args: argparse.Namespace) -> int:
        from search_spaces import get_space, list_spaces

        if not args.name:
            for n in list_spaces():
                doc = (type(get_space(n)).__doc__ or "").strip().splitlines()
                print(f"{n:18s} {doc[0] if doc else ''}")
            return 0
        space = open_space(args.name, {})
        rows = []
        for d in space.dimensions():
            if d["type"] == "categorical":
                domain = d["choices"]
            elif "low" in d:
                domain = f"[{fmt(d['low'])}, {fmt(d['high'])}]" + (" log" if d.get("log") else "")
            else:  # e.g. nb201's arch: ops on each edge
                domain = f"{len(d.get('edges', [])) or ''} edges x {d.get('choices')}"
            rows.append([d["name"], d["type"], domain, d.get("default"), "fixed" if d.get("fixed") else "searched",
                         d.get("description", "")])
        print(table(rows, ["dimension", "type", "domain", "default", "", "description"]))
        print()
        print(_space_doc(space))
        return 0


def _space_doc(space) -> str:
    """A space's class docstring, its model's (initialization rules) and, for spaces with a CReLU choice,
    the CReLU / looks-linear math of :mod:`search_spaces.layers`."""
    import inspect

    import search_spaces.layers as layers

    parts = [inspect.getdoc(space) or ""]
    model_cls = getattr(type(space), "model_class", None)
    if model_cls is not None and inspect.getdoc(model_cls):
        parts.append(f"{model_cls.__name__}: " + inspect.getdoc(model_cls))
    if any(d["name"] == "activation" and "crelu" in d.get("choices", ()) for d in space.dimensions()):
        parts.append(inspect.getdoc(layers))
    return "\n\n".join(p for p in parts if p)
