"""``python -m nas objectives [METRIC]``: the metric table, one metric's documentation, or the combined score."""

from __future__ import annotations

import argparse
import re

from .args import Command
from .output import say, table, table_with_text, terminal_width

__all__ = ["Objectives"]


class Objectives(Command):
    """List every metric with its direction, cost class, needs and source (--verbose: family, file, test)."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("metric", nargs="?", type=_metric_name, default=None,
                       help="print one metric's full documentation (definition, math, direction, cost, citation, "
                            "measured evidence) instead of the table")
        p.add_argument("--filter", default=None, help="fnmatch pattern on names, e.g. 'rank_*' (default: all)")
        p.add_argument("--family", default=None, choices=("thesis", "zero_cost", "noise"),
                       help="only the metrics of one family (folder of objectives/)")
        p.add_argument("--verbose", action="store_true",
                       help="also show each metric's family, source file and test file")
        p.add_argument("--combined", action="store_true",
                       help="show the combined gradnas score instead: its feature sets (init, after the early "
                            "steps) with directions and weights, and the search's default objectives")

    def take_action(self, args: argparse.Namespace) -> int:
        from objectives import registry

        if args.combined:
            return _print_combined()
        entries = [registry.get(n) for n in registry.names(args.filter, family=args.family)]
        if args.metric:
            return _print_metric(registry.get(args.metric))
        if args.verbose:
            rows = [[e.name, e.direction, e.cost, ",".join(sorted(e.needs)) or "-", e.family, e.file, e.test]
                    for e in entries]
            print(table(rows, ["metric", "direction", "cost", "needs", "family", "file", "test"]))
        else:
            def measured(e, phase: str) -> str:
                m = e.measured.get(phase)
                if m is None:
                    return "-"
                flag = {True: "", False: " unstable", None: ""}[m.stable]
                return f"{m.direction[:3]} {m.tau:+.2f}{flag}"

            rows = [[e.name, e.hypothesis[:3], measured(e, "init"), measured(e, "early"), e.cost,
                     _short_citation(e.citation)] for e in entries]
            headers = ["metric", "paper", "at init", "after early", "cost", "source"]
            print(table_with_text(rows, headers, [e.summary.rstrip(":").strip() for e in entries], "definition",
                                  terminal_width()))
            labs = sorted({m.lab for e in entries for m in e.measured.values()})
            say("\npaper: the direction the metric's paper argues for (a hypothesis); measured: the direction "
                "that ranks trained accuracy on the proxy lab (" + (", ".join(labs) or "none yet") +
                f"), at init and after the early steps, with Kendall tau (n {max((m.n for e in entries for m in e.measured.values()), default=0)} configs; benchmarks/proxy_lab.py); unstable: the other lab measured the opposite sign. "
                "`objectives METRIC` prints a metric's full definition, math and citation; --verbose its "
                "needs, files and tests.")
        say("\nUse a metric as an objective KEY (at init) or KEY@early; derived keys: loss_drop, loss_early, train_kappa_w, "
            "train_loss_smooth_min, relative_step, relative_gradient_change, params, flops. `objectives --combined` "
            "shows the combined gradnas score.")
        return 0


def _metric_name(text: str) -> str:
    """An argparse ``type``: a registered metric."""
    from objectives import registry

    if text not in registry.names():
        raise argparse.ArgumentTypeError(f"unknown metric {text!r} (valid: {', '.join(registry.names())})")
    return text


def _print_combined() -> int:
    """`objectives --combined`: the combined score's feature sets and the search's default objectives."""
    from objectives.combine import BUDGET_EARLY_FEATURES, BUDGET_INIT_FEATURES, EARLY_FEATURES, INIT_FEATURES

    from ..study import budget_objectives, default_objectives

    for title, feats in (("phase 'init' (combined_score(table, 'init'))", INIT_FEATURES),
                         ("phase 'early' (combined_score(table, 'early'))", EARLY_FEATURES),
                         ("budget search, rung 0 (BUDGET_INIT_FEATURES; <= 2 training steps)", BUDGET_INIT_FEATURES),
                         ("budget search, after the early steps (BUDGET_EARLY_FEATURES)", BUDGET_EARLY_FEATURES)):
        rows = [[f.key, f.direction[:3], f"{f.weight:g}"] for f in feats]
        print(f"combined score, {title}:")
        print(table(rows, ["feature", "direction", "weight"]))
        print()
    print(f"search defaults: budget search --objectives {budget_objectives()}; --trials N: "
          f"{default_objectives()} (with early steps), {default_objectives(0)} (--early-steps 0)")
    print("score = sum over features of weight * log(rank / n), ranks in each feature's direction among "
          "the trials ranked together (a missing or non-finite value ranks last); higher = better.")
    return 0


def _print_metric(entry) -> int:
    """`objectives METRIC`: the registry entry and the function's whole docstring (the math)."""
    import inspect

    print(f"{entry.name}  ({entry.family}, {entry.file})")
    print(f"  paper direction: {entry.hypothesis}    cost: {entry.cost}    needs: "
          f"{', '.join(sorted(entry.needs)) or '-'}")
    for phase, m in sorted(entry.measured.items()):
        stable = {True: "", False: " (unstable: the other lab disagrees)", None: ""}[m.stable]
        print(f"  measured ({phase}): {m.direction}, Kendall tau {m.tau:+.2f} over {m.n} configs of {m.lab}{stable}")
    print(f"  citation: {entry.citation}")
    print()
    print(inspect.getdoc(entry.fn) or "(no docstring)")
    return 0


def _short_citation(citation: str) -> str:
    """'Lee & Ham, AZ-NAS: ..., CVPR 2024 (...)' -> 'Lee & Ham 2024': the authors (three or more become
    'First et al.') and the first publication year, when the citation has one."""
    parts = [p.strip() for p in re.sub(r"^.*baseline of ", "", citation).split(",")]
    authors = [re.sub(r"\s*\(?\d{4}\)?$", "", parts[0])]
    if "et al" not in authors[0] and "&" not in authors[0]:
        for part in parts[1:]:
            if ":" in part or len(part.split()) > 3 or not part[:1].isupper():
                break
            authors.append(part)
            if "&" in part:
                break
    names = sum(len(a.split("&")) for a in authors)
    author = authors[0] if names <= 2 or "et al" in authors[0] else f"{authors[0]} et al."
    if names == 2 and len(authors) == 2:
        author = f"{authors[0]} & {authors[1]}"
    year = re.search(r"(?<![\d.:])(19|20)\d{2}(?![\d.])", citation)
    return f"{author} {year.group(0)}" if year else author
