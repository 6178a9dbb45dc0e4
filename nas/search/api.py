"""The library entry point: ``nas.search(...)`` runs a search from Python and returns a :class:`SearchResult`.

    import nas

    result = nas.search(space="resnet_cifar", dataset="synthetic", budget="2m", smoke=True)
    result.best_model        # the trained nn.Module (budget search), weights loaded
    result.config            # its config; result.test_acc, result.curve: its test accuracy per epoch
    result.search_config     # the resolved SearchConfig (every default filled in)
    result.trials            # a pandas DataFrame, one row per trial (params, values, attributes)
    result.study             # the optuna.Study (also in RUNS_DIR/STUDY/study.db: the dashboard opens it)

Keyword arguments are the fields of :class:`~nas.search.config.SearchConfig` (the command line's options:
``budget="20m"`` or ``trials=50``, ``bounds``, ``workers``, ``study``, ``storage``, ...). Rerunning with the
same study continues it: a proxy search up to ``trials`` complete trials, an interrupted budget search
from where it stopped. :class:`Search` is the same in two steps (resolve and open, then run), for callers
that want the study before it runs; the CLI uses it and only prints.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Callable

from .config import SearchConfig
from .inputs import SearchError, check_writable, remove_if_empty
from .keys import StudyFolder

__all__ = ["search", "Search", "SearchResult", "load_model", "register_data"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class SearchResult:
    """What a search returns. ``best`` is the budget search's best trained model summary (trial, config,
    test accuracy, per-epoch curve, paths), None for a proxy-only search or when no finalist finished."""

    search_config: SearchConfig
    study: Any
    stats: dict[str, Any]
    best: dict[str, Any] | None = None

    @property
    def folder(self) -> StudyFolder:
        """The study's folder (``study.db``, ``trials.csv``, ``best_model.pt``, checkpoints)."""
        return self.search_config.folder

    @property
    def best_model(self):
        """The best trained model (``torch.nn.Module``, eval mode), or None."""
        if not self.best or not self.best.get("model"):
            return None
        return load_model(self.best["model"])

    @property
    def config(self) -> dict[str, Any] | None:
        """The best trained model's config (rebuilds it with the space), or None."""
        return dict(self.best["config"]) if self.best else None

    @property
    def test_acc(self) -> float | None:
        """The best model's final test accuracy (None for a regression loss: see :attr:`test_loss`)."""
        return self.best.get("test_acc") if self.best else None

    @property
    def test_loss(self) -> float | None:
        """The best model's final test loss under a regression loss (its ranking measure), else None."""
        return self.best.get("test_loss") if self.best else None

    @property
    def curve(self) -> list[float] | None:
        return list(self.best.get("acc_curve") or []) if self.best else None

    @property
    def trials(self):
        """One row per trial (``optuna.Study.trials_dataframe``: number, state, values, params, attributes)."""
        return self.study.trials_dataframe(multi_index=False)

    @property
    def pareto(self) -> list[Any]:
        """The best trials by the study's objectives (feasible, non-dominated; :func:`~nas.search.ranking.best_trials`)."""
        from .ranking import best_trials, complete_trials

        return best_trials(complete_trials(self.study), self.study.directions)[0]


class Search:
    """A search in two steps: ``Search(config)`` resolves the config and opens (or resumes) its study;
    :meth:`run` runs it. ``on_event`` receives the budget search's events (plan, rung, job, fail, done),
    ``on_update`` the proxy search's per-trial status; ``warn`` a fallback notice (dataset ``auto``)."""

    def __init__(self, config: SearchConfig, warn: Callable[[str], None] | None = None) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.config = config if config.resolved else config.resolve(warn=warn)
        self.study = self._open()

    @property
    def storage(self) -> str:
        return self.config.storage

    def _open(self):
        from ..study import StudyError, default_storage, open_study

        c = self.config
        folder = c.folder.root
        check_writable(folder)
        try:
            c.storage = c.storage or default_storage(c.runs_dir, c.study)
            return open_study(c.study, c.storage, c.resolved["objectives"], c.resolved["constraints"], c.sampler,
                              c.seed, c.study_settings())
        except StudyError as exc:
            remove_if_empty(folder)
            raise SearchError(str(exc)) from None

    def run(self, on_event: Callable[[dict], None] | None = None,
            on_update: Callable[[dict], None] | None = None) -> SearchResult:
        """Run the search (a rerun continues it); KeyboardInterrupt propagates after the study and
        ``trials.csv`` are saved."""
        import torch

        from ..study import export_trials

        c = self.config
        # before any work: a process keeps the oneDNN kernels chosen under its first thread count, so the
        # driver (which runs the trials itself with one worker) uses the trials' count from the start
        torch.set_num_threads(c.threads)
        r = c.resolved
        try:
            if c.mode == "budget":
                from .budget import run_budget

                data = r["data"]
                stats = run_budget(self.study, r["space"], c, r["objectives"], r["constraints"], c.folder,
                                   data.input_shape, data.train_size, on_event=on_event)
            else:
                from .proxy import run_trials

                stats = run_trials(self.study, r["space"], c, r["objectives"], r["constraints"], on_update=on_update)
        finally:
            export_trials(self.study, c.folder.trials_csv)
        return SearchResult(search_config=c, study=self.study, stats=stats, best=stats.get("best"))


def search(space: str | None = None, data: Any = None, **options: Any) -> SearchResult:
    """Run a search and return its :class:`SearchResult` (module docstring). ``options`` are
    :class:`~nas.search.config.SearchConfig` fields; without ``budget`` and ``trials`` it is the 15-minute
    (CPU) / 1-hour (GPU) budget search. ``data``: your data from Python — a ``nas.data.Dataset``, or
    ``(train, test)`` where each is a torch ``Dataset``/``DataLoader`` or an ``(x, y)`` pair of tensors or
    arrays (``test`` may be None: a stratified 20 % is held out); it is saved under ``RUNS_DIR/data/`` so
    Ray workers load the same tensors. Raises :class:`~nas.search.config.SearchError` for bad input."""
    unknown = set(options) - {f.name for f in dataclasses.fields(SearchConfig)} - {"on_event", "on_update", "warn"}
    if unknown:
        raise SearchError(f"unknown option(s) {', '.join(sorted(unknown))}; valid: the fields of SearchConfig")
    on_event, on_update = options.pop("on_event", None), options.pop("on_update", None)
    warn = options.pop("warn", None)
    if data is not None:
        if "dataset" in options:
            raise SearchError("give data=... (objects) or dataset=... (a name or reference), not both")
        if loss_reference_of(options.get("loss_fn")).startswith("local:") and options.get("workers") != 1:
            raise SearchError("loss_fn has no import path (a lambda or a notebook function): pass workers=1 to search "
                              "in this process, or define it in a module or .py file")
        options["dataset"] = register_data(data, Path(options.get("runs_dir", "runs")) / "data",
                                           seed=int(options.get("seed", 0)), loss_fn=options.pop("loss_fn", None),
                                           max_memory=options.pop("data_memory_limit", None))
    return Search(SearchConfig(space=space, **options), warn=warn).run(on_event=on_event, on_update=on_update)


def loss_reference_of(loss_fn: Any) -> str:
    """The loss's reference string ("" for none); a bad loss is a :class:`SearchError`."""
    from ..data import DatasetError, loss_reference

    try:
        return loss_reference(loss_fn) or ""
    except DatasetError as exc:
        raise SearchError(str(exc)) from None


def register_data(data: Any, folder: Path, seed: int = 0, loss_fn: Any = None, max_memory: Any = None) -> str:
    """A ``saved:`` reference to ``data`` (a Dataset or ``(train, test)``) written under ``folder``, trained
    with ``loss_fn``; torch Datasets larger than ``max_memory`` stay datasets, streamed (pickled, not copied)."""
    import dataclasses as dc

    from ..data import Dataset, DatasetError, StreamedDataset, from_arrays, from_torch, loss_reference, parse_memory
    from ..data import register_dataset

    try:
        loss = loss_reference(loss_fn)
        if max_memory is not None:
            parse_memory(max_memory, "data_memory_limit")
        if isinstance(data, (Dataset, StreamedDataset)):
            if loss is not None:
                data = dc.replace(data, loss=loss)
        else:
            if not (isinstance(data, (tuple, list)) and len(data) == 2):
                raise DatasetError(f"data must be a nas.data.Dataset or (train, test), got {type(data).__name__}")
            train, test = data
            if isinstance(train, (tuple, list)) and len(train) == 2:
                data = from_arrays(train, test, name="data", seed=seed, loss=loss)
            else:
                data = from_torch(train, test, name="data", seed=seed, loss=loss, max_memory=max_memory)
        return register_dataset(data, folder)
    except DatasetError as exc:
        raise SearchError(str(exc)) from None


def load_model(path: str | Path, with_info: bool = False, with_transform: bool = False):
    """The model saved in a ``best_model.pt`` (space, bounds, config and weights), in eval mode. With
    ``with_info``: ``(model, info)``, ``info`` holding what inference needs: ``input_shape``,
    ``num_classes``, and where the data provided them ``mean``/``std`` (per-channel normalization),
    ``class_names``, ``preprocess`` (the recipe of a folder or table dataset), plus the config and accuracy.
    With ``with_transform``: a :class:`nas.inference.SavedModel` (``.model``, ``.info``, ``.transform`` from
    files to normalized inputs of the training shape, ``.predict(paths)``, ``.export(path)``); it raises
    :class:`nas.inference.InferenceError` (a ValueError) for a missing or foreign file."""
    if with_transform:
        from ..inference import SavedModel

        return SavedModel.load(path)
    import torch

    from search_spaces import get_space

    ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    model = get_space(ckpt["space"], **ckpt["bounds"]).build(ckpt["config"], ckpt["num_classes"],
                                                             tuple(ckpt["input_shape"]))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    if not with_info:
        return model
    return model, {k: v for k, v in ckpt.items() if k != "state_dict"}

