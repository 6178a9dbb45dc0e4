"""gradnas application layer: the search, data, study, training, reports (everything with I/O or state).

From Python::

    import nas

    result = nas.search(space="resnet_cifar", dataset="synthetic", budget="2m", smoke=True)
    model = result.best_model            # the trained nn.Module
    print(result.config, result.test_acc)

From the shell: ``python -m nas --help`` (or ``gradnas --help``). ``nas`` imports the ``objectives`` and
``search_spaces`` libraries; they never import ``nas``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["search", "Search", "SearchConfig", "SearchResult", "SearchError", "load_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        import importlib

        module = importlib.import_module(f"{__name__}.search")
        return module if name == "search" else getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
