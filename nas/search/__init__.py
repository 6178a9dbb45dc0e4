"""The search core, written once (see the submodules):

* :mod:`~nas.search.config`: :class:`SearchConfig`, the single description of a search;
* :mod:`~nas.search.lifecycle`: a trial's life (ask -> claim -> sample -> record -> spec -> tell);
* :mod:`~nas.search.executor`: in process, local Ray or a cluster, one submit/wait loop;
* :mod:`~nas.search.ownership`: which driver owns a running trial (heartbeats, stale recovery);
* :mod:`~nas.search.keys`: every stored name and the study folder's files;
* :mod:`~nas.search.ranking`: best, feasible and a cohort's ranking;
* :mod:`~nas.search.proxy` and :mod:`~nas.search.budget`: the two drivers;
* :mod:`~nas.search.api`: :func:`search` and :class:`SearchResult`, the library entry point.

Submodules are imported on first use, so ``import nas`` stays cheap. The package is also callable:
``nas.search(...)`` is :func:`nas.search.api.search` (the package and the library's verb share a name).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__all__ = ["SearchConfig", "SearchError", "SearchResult", "search", "load_model"]

_WHERE = {"SearchConfig": "config", "SearchError": "config", "SearchResult": "api", "search": "api",
          "load_model": "api"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """``nas.search(...)`` runs a search (:func:`nas.search.api.search`)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from .api import search

        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
