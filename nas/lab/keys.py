"""The columns of a population table (:mod:`nas.lab.build`): identity, proxy keys, their directions and kinds.

Proxy keys: every registered metric at init (``<m>``) and after the early steps (``<m>@early``), the
values derived from the early steps (:data:`RUN_VALUES`; the training-loss baselines among them), and the
long run's ``<key>@<steps>`` values. Results: ``val_*`` (the training with the config's seed) and ``rep_*``
(the repeat training with another seed); timings ``time_*``.
"""

from __future__ import annotations

import re
from typing import Sequence

from nas.search.keys import EARLY_SUFFIX
from nas.report.stats import key_direction
from nas.study import metric_of
from objectives import registry

__all__ = ["FORMAT", "LONG_KEYS", "RUN_VALUES", "BASELINES", "WEIGHT_FREE", "ACC", "REP_ACC", "COMBINED",
           "ID_COLUMNS", "direction", "kind_of", "proxy_keys"]

#: Bumped when the table's meaning changes; a table of another format is refused.
FORMAT = 1
#: Values of the long (``--long-steps``) run, stored as ``<key>@<steps>``.
LONG_KEYS = ("train_loss_last", "loss_early", "loss_drop", "train_kappa_w")
#: Derived values of the main run kept in the table (the loss baselines among them).
RUN_VALUES = ("loss_init", "loss_early", "loss_drop", "train_loss_first", "train_loss_last", "train_kappa_w")
#: Keys of the training-loss baselines (an HPO user's first try), besides their ``@<steps>`` variants.
BASELINES = ("train_loss_last", "loss_early", "loss_drop")
#: Metrics that do not depend on the weights: their ``@early`` value repeats the init value.
WEIGHT_FREE = ("params", "flops")
ACC = "val_best_acc"
REP_ACC = "rep_best_acc"
#: The combined multi-metric rank of the default objectives (:func:`nas.lab.correlations.mean_rank`).
COMBINED = "gradnas_mean_rank"
#: Leading columns of the table, in order.
ID_COLUMNS = ("index", "seed", "config", "settings", "main_done", "eval_status", "eval_error", "metric_errors",
              "long_error", "train_error", "rep_done", "rep_seed", "rep_error")
_LONG_RE = re.compile(r"^(?P<base>.+)@(?P<steps>\d+)$")
#: ``kind`` of a registered metric by its registry family.
_FAMILY_KINDS = {"thesis": "thesis", "zero_cost": "peer", "noise": "noise"}


def direction(key: str) -> str:
    """Better direction of a table key: ``nas.report.stats.key_direction``, the base key's for ``<key>@<steps>``,
    ``minimize`` for the combined rank."""
    if key == COMBINED:
        return "minimize"
    m = _LONG_RE.match(key)
    if m and metric_of(key) is None:
        return key_direction(m["base"])
    return key_direction(key)


def kind_of(key: str) -> str:
    """thesis / peer / noise (registered metrics, by ``registry.get(m).family``), baseline, derived, combined."""
    if key == COMBINED:
        return "combined"
    long = _LONG_RE.match(key)
    m = metric_of(key) or (metric_of(long["base"]) if long else None)
    if m is not None:
        return _FAMILY_KINDS[registry.get(m).family]
    base_key = long["base"] if long else key
    return "baseline" if base_key in BASELINES else "derived"


def proxy_keys(columns: Sequence[str]) -> list[str]:
    """The proxy columns of a table, in order: each metric at init then after the early steps (registry
    order; ``params@early``/``flops@early`` left out: they equal ``params``/``flops``), the derived values,
    then the ``@<steps>`` values of the long run."""
    cols = set(columns)
    keys = []
    for m in registry.names():
        keys.append(m)
        if m not in WEIGHT_FREE:
            keys.append(f"{m}{EARLY_SUFFIX}")
    keys += list(RUN_VALUES)
    keys += sorted((c for c in cols if _LONG_RE.match(c) and metric_of(c) is None
                    and _LONG_RE.match(c)["base"] in LONG_KEYS), key=lambda c: (int(_LONG_RE.match(c)["steps"]), c))
    long_metrics = [c for c in cols if _LONG_RE.match(c) and metric_of(_LONG_RE.match(c)["base"])]
    order = {m: i for i, m in enumerate(registry.names())}
    keys += sorted(long_metrics, key=lambda c: (int(_LONG_RE.match(c)["steps"]), order[_LONG_RE.match(c)["base"]]))
    seen, out = set(), []
    for k in keys:
        if k in cols and k not in seen:
            seen.add(k)
            out.append(k)
    return out
