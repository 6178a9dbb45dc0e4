"""The package data ``objectives`` reads (``objectives/data/*.json``), written from the lab's tables.

``python -m nas.lab regenerate`` (:func:`regenerate`, run from the repository root) rewrites, from the
committed ground-truth tables in ``benchmarks/tables/``:

* ``evidence.json``: every metric's measured direction per phase on the resnet lab, signs marked stable or
  unstable against the NB201 lab (:func:`nas.lab.evidence.measure`);
* ``feature_sets.json``: the combined score's feature sets, chosen on the whole resnet lab
  (:func:`nas.lab.selection.select`; the budget sets capped at :data:`BUDGET_MAX_COST` steps with the costs
  of ``metric_costs.json``). Leave-one-lab-out (:func:`nas.lab.loo.decide`, docs/results/proxy-lab.md) found
  no selection procedure that beats this one by its rule, so the sets stay; :func:`all_labs_document` is
  the document a winning procedure would ship, chosen on all the labs (:data:`LABS`) at once.

Each document records the sha256 of every file it was computed from and the command that made it.
``metric_costs.json`` is a measurement, not a function of the tables: ``benchmarks/metric_cost.py
--write-costs`` writes it (:func:`metric_costs_document`). ``--check`` compares instead of writing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import objectives
from objectives.combine import Feature, rank_aggregate
from objectives.evidence import EVIDENCE_FIELDS

from .evidence import Measured, measure
from .loo import PHASES, evaluate, load_lab
from .procedures import BUDGET_MAX_COST, PROCEDURES, SETS, choose, set_cost
from .selection import (EARLY_LOSS, candidate_features, cost_steps, pooled_tau, select, select_structured,
                        structured, tau)
from .tables import SEARCH_EARLY_STEPS, load, phase_table, steps_view

__all__ = ["PACKAGE_DATA", "TABLES", "RESNET_LAB", "NB201_LAB", "MLP_LAB", "VGG_LAB", "LABS", "COMMAND", "PINNED_EARLY_LOSS_WEIGHT",
           "BUDGET_MAX_COST", "sha256", "dumps", "evidence_document", "feature_sets_document", "all_labs_document",
           "metric_costs_document", "read_document", "regenerate"]

#: Where ``objectives`` reads its package data (the installed package's folder; in a checkout, the source).
PACKAGE_DATA = Path(objectives.__file__).resolve().parent / "data"
#: The committed ground-truth tables, relative to the repository root.
TABLES = Path("benchmarks") / "tables"
RESNET_LAB = "resnet_mnist5k.csv.gz"
NB201_LAB = "nb201_lab.csv.gz"
MLP_LAB = "mlp_mnist5k.csv.gz"
VGG_LAB = "vgg_mnist5k.csv.gz"
#: The lab tables of leave-one-lab-out (:func:`all_labs_document` chooses on all of them at once).
LABS = (RESNET_LAB, NB201_LAB, MLP_LAB, VGG_LAB)
COMMAND = "python -m nas.lab regenerate"
#: Weight of the early loss in the shipped early sets (``EARLY_FEATURES``, ``BUDGET_EARLY_FEATURES``): set
#: by hand when the 150-config lab was committed. The procedure (:func:`~nas.lab.selection.select_structured`
#: on the whole table) picks 4 for both sets (in-sample tau 0.681 against 0.675 at 8 for the early set, 0.686
#: against 0.674 for the budget set); ``feature_sets.json`` records the procedure's weight and tau beside it.
PINNED_EARLY_LOSS_WEIGHT = 8.0


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def dumps(doc: Any, indent: str = "") -> str:
    """JSON text, one line per leaf: a small dict of plain values (or a list of plain values) on one line,
    every other dict and list one entry per line, so that a regenerated file's diff shows what changed."""
    def plain(v: Any) -> bool:
        return not isinstance(v, (dict, list)) or (isinstance(v, list) and all(plain(x) and not isinstance(x, list)
                                                                                for x in v))
    if plain(doc) or (isinstance(doc, dict) and len(doc) <= 8 and all(plain(v) for v in doc.values())):
        return json.dumps(doc, ensure_ascii=False)
    inner = indent + "  "
    if isinstance(doc, dict):
        items = [f"{inner}{json.dumps(k)}: {dumps(v, inner)}" for k, v in doc.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    return "[\n" + ",\n".join(f"{inner}{dumps(v, inner)}" for v in doc) + f"\n{indent}]"


def _sources(paths: Sequence[str | Path]) -> dict[str, str]:
    """path -> sha256 of each file; paths under the working directory (the repository root) relative to it."""
    out = {}
    for p in paths:
        try:
            name = Path(p).resolve().relative_to(Path.cwd().resolve()).as_posix()
        except ValueError:
            name = Path(p).as_posix()
        out[name] = sha256(p)
    return out


def evidence_document(measured: Measured, sources: Sequence[str | Path], command: str) -> dict[str, Any]:
    """``evidence.json``: ``measured`` (:func:`nas.lab.evidence.measure`) with its tables' hashes."""
    return {
        "about": "Measured metric directions per phase (init; early = after the search's default "
                 f"{SEARCH_EARLY_STEPS} early steps): the direction with oriented Kendall tau >= 0 against trained "
                 "accuracy, n configs, the lab, and whether a second lab measured the same sign at init (null: "
                 "not measured there). Generated by nas.lab, never edited by hand; read by objectives.evidence.",
        "command": command,
        "sha256": _sources(sources),
        "measured": {m: {phase: dict(zip(EVIDENCE_FIELDS, e)) for phase, e in measured[m].items()}
                     for m in sorted(measured)},
    }


def _features(features: Sequence[Feature]) -> list[dict[str, Any]]:
    return [{"key": f.key, "direction": f.direction, "weight": float(f.weight)} for f in features]


def feature_sets_document(table: str | Path, costs: str | Path, command: str) -> dict[str, Any]:
    """``feature_sets.json``: the sets chosen on the whole lab table ``table`` (a population table); the
    budget sets are capped with :data:`objectives.evidence.COST_STEPS`, read from the file ``costs``, whose
    hash is recorded with the table's."""
    df = load(table)
    acc = df["acc"].to_numpy()
    init_table, kind = phase_table(df, "init")
    keys = candidate_features(init_table, kind)
    view = steps_view(df, str(SEARCH_EARLY_STEPS))

    def in_sample(t, features) -> float:
        return round(tau(rank_aggregate(t, features), acc), 3)

    def early(base: Sequence[Feature], name: str) -> dict[str, Any]:
        chosen = select_structured(view, base)
        shipped = structured(base, PINNED_EARLY_LOSS_WEIGHT)
        return {"how": f"{EARLY_LOSS} (minimized, weight {PINNED_EARLY_LOSS_WEIGHT:g}: pinned, see "
                       f"nas.lab.data.PINNED_EARLY_LOSS_WEIGHT) + the {name} set, judged on the table after "
                       f"{SEARCH_EARLY_STEPS} steps",
                "in_sample_tau": in_sample(view, shipped),
                "procedure_weight": chosen[0].weight, "procedure_in_sample_tau": in_sample(view, chosen),
                "features": _features(shipped)}

    init, _ = select(init_table, keys)
    budget, _ = select(init_table, keys, max_cost=BUDGET_MAX_COST)
    sets = {
        "init": {"how": "greedy forward selection of summed log-ranks at init on the whole table",
                 "in_sample_tau": in_sample(init_table, init),
                 "cost_steps": round(cost_steps([f.key for f in init]), 2),
                 "features": _features(init)},
        "early": early(init, "init"),
        "budget_init": {"how": f"the same selection, candidates and set capped at {BUDGET_MAX_COST:g} training steps",
                        "in_sample_tau": in_sample(init_table, budget),
                        "cost_steps": round(cost_steps([f.key for f in budget]), 2), "features": _features(budget)},
        "budget_early": early(budget, "budget_init"),
    }
    return {
        "about": "The combined score's feature sets (objectives.combine: INIT_FEATURES, EARLY_FEATURES, "
                 "BUDGET_INIT_FEATURES, BUDGET_EARLY_FEATURES), chosen on the whole resnet lab (in-sample: the "
                 "held-out figures of the procedure are printed by benchmarks/proxy_lab.py). Generated by nas.lab, "
                 "never edited by hand.",
        "command": command,
        "sha256": _sources([table, costs]),
        "sets": sets,
    }


def all_labs_document(tables: Sequence[str | Path], costs: str | Path, command: str, procedure: str,
                      early_procedure: str | None = None) -> dict[str, Any]:
    """A ``feature_sets.json`` whose sets the selection procedure ``procedure`` (:mod:`nas.lab.procedures`;
    the early set: ``early_procedure``, whose init sets are the same) chooses on all the lab ``tables`` at
    once (:func:`nas.lab.loo.load_lab`), with each set's in-sample tau per lab, its pooled tau and its cost
    in steps (:func:`nas.lab.procedures.set_cost`, with :data:`objectives.evidence.COST_STEPS`, read from the
    file ``costs``, whose hash is recorded with the tables')."""
    early_procedure = early_procedure or procedure
    labs = [load_lab(t) for t in tables]
    by_phase = {ph: [lab.phases[ph] for lab in labs if ph in lab.phases] for ph in PHASES}
    sets = choose(by_phase, "mean", procedure)
    sets["early"] = choose(by_phase, "mean", early_procedure)["early"]
    out = {}
    for name, feats in sets.items():
        phase = SETS[name]
        rule = early_procedure if name == "early" else procedure
        out[name] = {"how": f"{rule}: {PROCEDURES[rule].about}; chosen on the {phase} tables of "
                            f"{', '.join(lab.name for lab in labs if phase in lab.phases)}",
                     "in_sample_tau": {lab.name: round(evaluate(lab.phases[phase], feats)[0], 3)
                                       for lab in labs if phase in lab.phases},
                     "pooled_tau": round(pooled_tau(by_phase[phase], feats), 3),
                     "cost_steps": round(set_cost(feats), 2), "features": _features(feats)}
    return {
        "about": "The combined score's feature sets (objectives.combine: INIT_FEATURES, EARLY_FEATURES, "
                 "BUDGET_INIT_FEATURES, BUDGET_EARLY_FEATURES), chosen on every lab table at once by the "
                 "procedure that won leave-one-lab-out (in-sample: the held-out figures are printed by "
                 "benchmarks/proxy_lab.py --loo, docs/results/proxy-lab.md). Generated by nas.lab, never edited "
                 "by hand.",
        "command": command,
        "procedure": procedure,
        "early_procedure": early_procedure,
        "labs": [lab.name for lab in labs],
        "sha256": _sources([*tables, costs]),
        "sets": out,
    }


def metric_costs_document(measured: dict[str, float], command: str, previous: dict[str, Any] | None = None,
                          setting: str = "") -> dict[str, Any]:
    """``metric_costs.json`` from one run of ``benchmarks/metric_cost.py``: ``measured`` metric -> seconds as
    a multiple of one training step (rounded to 2 places, sorted); entries of ``previous`` (the file it
    replaces) that the run does not measure are kept, after them, with their notes."""
    costs = {m: round(float(measured[m]), 2) for m in sorted(measured)}
    kept = {k: v for k, v in (previous or {}).get("cost_steps", {}).items() if k not in costs}
    notes = {k: v for k, v in (previous or {}).get("not_measured", {}).items() if k in kept}
    return {
        "about": "Cost of each metric at initialization in training steps of the same network (one forward, "
                 "backward and SGD step); config values are free; a metric missing here counts as too expensive "
                 "(nas.lab.selection.cost_steps, the --max-cost cap of a budgeted search's rung 0).",
        "command": command,
        "setting": setting,
        "not_measured": notes,
        "cost_steps": {**costs, **kept},
    }


def read_document(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def regenerate(tables: str | Path = TABLES, out: str | Path = PACKAGE_DATA, command: str = COMMAND,
               check: bool = False) -> dict[str, bool]:
    """Write (``check``: compare) ``evidence.json`` and ``feature_sets.json`` under ``out`` from the tables
    :data:`RESNET_LAB` and :data:`NB201_LAB` under ``tables`` (the budget sets with the metric costs
    ``objectives`` reads, :data:`objectives.evidence.COST_STEPS`). Returns file name -> whether its content
    changed (``check``: differs from the computed one)."""
    tables, out = Path(tables), Path(out)
    resnet, nb201, costs = tables / RESNET_LAB, tables / NB201_LAB, PACKAGE_DATA / "metric_costs.json"
    lab_name = RESNET_LAB.split(".")[0]
    docs = {
        "evidence.json": evidence_document(measure(load(resnet), lab_name, load(nb201)), [resnet, nb201], command),
        "feature_sets.json": feature_sets_document(resnet, costs, command),
    }
    changed = {}
    for name, doc in docs.items():
        text = dumps(doc) + "\n"
        path = out / name
        changed[name] = not path.exists() or path.read_text(encoding="utf-8") != text
        if changed[name] and not check:
            path.write_text(text, encoding="utf-8")
    return changed
