"""The inputs of a search checked once, for the library and the command line: a space (registered or user
code), a dataset (built-in or a user reference), the metric names, the probe sizes, whether the model fits
the data, the runs folder. Each failure is a :class:`SearchError`: one line that says what to change (the
CLI prints it as ``error: ...`` and exits 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

__all__ = [
    "SearchError", "open_space", "open_dataset", "data_options", "metric_names", "check_group_size", "check_probe_size",
    "check_space_fits", "check_writable", "remove_if_empty",
]


class SearchError(ValueError):
    """A search that cannot run as described; the message is one line saying what to change."""


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def open_space(name: Any, bounds: dict[str, Any], smoke: bool = False):
    """The space ``name`` — a registered name, a reference to user code (``package.module:attr``,
    ``my_space.py:attr``) or, from Python, the space object or define-by-run function itself — narrowed
    to its smoke bounds with ``smoke``, then to ``bounds``. Its ``ref`` is the string that rebuilds it
    anywhere (what the study, the workers and ``best_model.pt`` store)."""
    from search_spaces import ConfigError, SpaceError, UnknownSpaceError, get_space, list_spaces

    try:
        space = get_space(name)
        if smoke:
            space = space.with_bounds(**space.smoke_bounds)
        return space.with_bounds(**bounds) if bounds else space
    except UnknownSpaceError:
        raise SearchError(f"unknown space {name!r}; valid: {', '.join(list_spaces())}; or a space of your own: "
                          f"package.module:attr or my_space.py:attr") from None
    except SpaceError as exc:
        raise SearchError(str(exc)) from None
    except ConfigError as exc:
        raise SearchError(f"bad --bounds: {exc}") from None


def open_dataset(name: str, data_dir: str, warn, download: bool = True, seed: int = 0) -> tuple[str, Any]:
    """``(resolved name, data)`` of dataset ``name`` (``auto`` resolved; ``warn(text)`` gets its notice),
    split with ``seed`` as the search's workers split it."""
    from ..data import DatasetError, load_dataset, resolve_dataset

    try:
        resolved, warning = resolve_dataset(name, data_dir, download=download)
        if warning:
            warn(warning)
        return resolved, load_dataset(resolved, data_dir, download=download, seed=seed)
    except DatasetError as exc:
        raise SearchError(str(exc)) from None


def _with_option(dataset: str, key: str, value: str, flag: str) -> str:
    """``dataset`` with option ``key=value``; the same option given differently in the reference is an error."""
    import urllib.parse

    from ..data import DatasetError
    from ..data.reference import OPTIONS, canonical_reference

    head, _, query = dataset.partition("?")
    given = {k.strip(): urllib.parse.unquote(v.strip()) for k, _, v in (p.partition("=") for p in query.split("&") if p)}
    if key in given and given[key] != value:
        raise SearchError(f"{flag} {value} conflicts with {key}={given[key]} in --dataset {dataset}: give it once")
    prefix = head.partition(":")[0]
    kind = prefix if prefix in ("folder", "table", "saved", "memory") else "function"
    if key not in OPTIONS[kind]:
        kinds = {"loss": "folder:, table:, module:function or Python data (data=...)",
                 "max_memory": "folder:, module:function or Python data (data=...); tables are read into memory"}
        raise SearchError(f"{flag} applies to {kinds.get(key, 'a data reference')}, not {dataset!r}")
    if key not in given:
        encoded = urllib.parse.quote(value, safe=":/._-~")
        dataset = f"{head}?{query + '&' if query else ''}{key}={encoded}"
    try:
        return canonical_reference(dataset)
    except DatasetError as exc:
        raise SearchError(str(exc)) from None


def data_options(dataset: str, target: str | None = None, loss: Any = None, max_memory: Any = None) -> str:
    """The dataset reference with ``--target``, ``--loss`` (``loss_fn``) and ``--max-memory``
    (``data_memory_limit``) as its options, which travel with it to every worker. Each must not contradict
    the reference's own option; built-in datasets take none (they are classified in memory, cross-entropy).

    Raises:
        SearchError: A conflict, an option the dataset kind does not take, a bad loss or size.
    """
    from ..data import DatasetError, is_reference, loss_reference, parse_memory

    dataset = str(dataset)
    try:
        loss = loss_reference(loss)
        size = None if max_memory is None else parse_memory(max_memory, "--max-memory")
    except DatasetError as exc:
        raise SearchError(str(exc)) from None
    if target is not None:
        if not dataset.startswith("table:"):
            raise SearchError(f"--target {target} is for a table dataset (--dataset table:PATH), not {dataset!r}")
        dataset = _with_option(dataset, "target", str(target), "--target")
    if not is_reference(dataset):
        if loss not in (None, "cross_entropy"):
            raise SearchError(f"--loss {loss} needs your data (folder:, table:, module:function, or data= in Python); "
                              f"{dataset} is classified with cross-entropy")
        if size is not None:
            raise SearchError(f"--max-memory applies to folder:, module:function or Python data; {dataset} is held in "
                              "memory")
        return dataset
    if loss is not None:
        dataset = _with_option(dataset, "loss", loss, "--loss")
    if size is not None:
        dataset = _with_option(dataset, "max_memory", str(size), "--max-memory")
    return dataset


def metric_names(value: str | Sequence[str] | None, extra: Sequence[str] = ()) -> list[str]:
    """The metrics of a ``metrics`` value (None: the default metrics, ``"all"``: every metric, a
    comma-separated string or a list of names) plus ``extra``."""
    import objectives
    from objectives import registry

    if value is None:
        names = list(objectives.DEFAULT_METRICS)
    elif isinstance(value, str):
        names = registry.names() if value.strip() == "all" else [n.strip() for n in value.split(",") if n.strip()]
    else:
        names = list(value)
    for n in [*names, *extra]:
        if n not in registry.names():
            raise SearchError(f"unknown metric {n!r}; valid: {', '.join(registry.names())}")
    return list(dict.fromkeys([*names, *extra]))


def check_group_size(group_size: int, probe_size: int) -> None:
    """The probe batch is split into groups: the group size must not exceed the probe size."""
    if group_size > probe_size:
        raise SearchError(f"--group-size {group_size} is larger than --probe-size {probe_size} (valid: "
                          f"1..{probe_size}: the probe batch is split into groups)")


def check_probe_size(probe_size: int, data: Any) -> None:
    """The probe batch is drawn from the training set: the probe size must not exceed it."""
    n = int(data.train_size)
    if probe_size > n:
        raise SearchError(f"--probe-size {probe_size} is larger than the {n} training examples of {data.name} "
                          f"(valid: 2..{n})")


def check_space_fits(space: Any, data: Any, config: dict[str, Any] | None = None) -> None:
    """A define-by-run function's model must take the data's inputs and give one output per class: build
    ``config`` (default: its smallest, the low end of every parameter) for the data once, so a misfit is
    one line before anything is written instead of every trial failing. Other spaces build from
    ``num_classes``/``input_shape`` themselves and are not built here."""
    from search_spaces import SpaceError
    from search_spaces.user import FunctionSpace

    if not isinstance(space, FunctionSpace):
        return
    try:
        config = space.default_config() if config is None else config
        space.build(config, data.num_classes, data.input_shape, seed=0)
    except SpaceError as exc:
        raise SearchError(str(exc)) from None
    except Exception:  # noqa: BLE001 - a combination the function rejects (ConfigError) fails its trials, not the search
        pass


def check_writable(folder: Path) -> None:
    """Create ``folder`` and write a file in it, or say that the runs directory is not writable."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise SearchError(f"runs directory {str(folder)!r} is not writable ({exc.strerror}); pass --runs-dir DIR") from None


def remove_if_empty(folder: Path) -> None:
    """Remove the study folder when it holds nothing, then the runs directory above it when that is empty
    too (a run that failed to open its storage leaves nothing behind)."""
    try:
        folder = Path(folder).resolve()
        for f in (folder, folder.parent):
            if f.is_dir() and not any(f.iterdir()) and f != Path.cwd().resolve():
                f.rmdir()
            else:
                break
    except OSError:
        pass
