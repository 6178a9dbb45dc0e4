"""``table:PATH?target=COLUMN``: a CSV / TSV / Parquet table with a label column, as feature vectors.

Rows whose target is missing are dropped (the count is in the dataset's ``source``). Labels are the index of
each target value among the sorted distinct values of the train split (``class_names`` keeps them);
a numeric target with fractional values is refused (gradnas classifies). Features are all other columns
except ``drop=``:

- numeric and boolean columns: missing values imputed with the train median, then standardized with the
  train mean and (population) std;
- text / categorical columns: one-hot over the train split's distinct values (a missing or unseen value is
  all zeros); a column with more than ``max_categories`` distinct values (ids, free text) is left out,
  and the ``source`` says so.

Each example is stored as ``1 x 1 x F`` (the batches the rest of gradnas handles are 4-D) and is never
augmented. The recipe fitted on the train split (``Dataset.preprocess``) turns new rows into model inputs
with :func:`encode_table`. Parquet needs ``pyarrow``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .dataset import Dataset, DatasetError, stratified_split
from .loss import is_regression_loss
from .reference import Reference, parse_fraction

__all__ = ["encode_table", "load_table", "read_table"]

_MAX_CATEGORIES = 50
_CSV = {".csv": ",", ".tsv": "\t", ".txt": ","}
_PARQUET = (".parquet", ".pq")


def read_table(path: str | Path, sep: str | None = None) -> Any:
    """A pandas DataFrame from a ``.csv``/``.tsv``/``.txt`` or ``.parquet`` file.

    Raises:
        DatasetError: A missing file, another format, Parquet without pyarrow, or an unreadable file.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"table {path} does not exist; give the path of a .csv or .parquet file")
    suffix = path.suffix.lower()
    try:
        if suffix in _PARQUET:
            if importlib.util.find_spec("pyarrow") is None:
                raise DatasetError(f"reading Parquet ({path.name}) needs pyarrow: pip install pyarrow")
            return pd.read_parquet(path, engine="pyarrow")
        if suffix in _CSV:
            return pd.read_csv(path, sep=sep or _CSV[suffix])
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001  (pandas raises many types for a malformed file)
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DatasetError(f"cannot read table {path} ({first}); check its format (sep= for CSV)") from exc
    raise DatasetError(f"table {path} has suffix {suffix or '(none)'!r}: use a .csv, .tsv or .parquet file")


def _is_numeric(series: Any) -> bool:
    import pandas as pd

    return pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series)


def _is_text(series: Any) -> bool:
    import pandas as pd

    return (pd.api.types.is_object_dtype(series) or isinstance(series.dtype, pd.CategoricalDtype)
            or pd.api.types.is_string_dtype(series))


def _check_finite(frame: Any, target: str, what: str) -> None:
    """Infinite values in a numeric feature column are refused (missing values are imputed); checked on every
    row before the split, so an infinite value that would land in the test split is refused too."""
    for name in frame.columns:
        if name != target and _is_numeric(frame[name]) and np.isinf(frame[name].astype("float64").to_numpy()).any():
            raise DatasetError(f"column {name!r} of {what} has infinite values: replace them, or leave it out with "
                               f"drop={name}")


def _fit(frame: Any, target: str, max_categories: int) -> tuple[dict[str, Any], list[str]]:
    """The recipe (per column: how to encode it) fitted on the train rows, and notes on left-out columns."""
    columns: list[dict[str, Any]] = []
    notes: list[str] = []
    for name in frame.columns:
        if name == target:
            continue
        col = frame[name]
        if _is_numeric(col):
            values = col.astype("float64")  # finite: load_table checked every row (_check_finite)
            if values.isna().all():
                notes.append(f"{name} (no values)")
                continue
            median = float(values.median())
            filled = values.fillna(median).to_numpy()
            std = float(filled.std())
            columns.append({"name": str(name), "kind": "numeric", "median": median, "mean": float(filled.mean()),
                            "std": std if std > 0 else 1.0})
        elif _is_text(col):
            categories = sorted({str(v) for v in col.dropna()})
            if len(categories) > max_categories:
                notes.append(f"{name} ({len(categories)} categories > max_categories={max_categories})")
                continue
            if categories:
                columns.append({"name": str(name), "kind": "categorical", "categories": categories})
            else:
                notes.append(f"{name} (no values)")
        else:
            raise DatasetError(
                f"column {name!r} has type {col.dtype}: convert it to numbers or text, or leave it out with drop={name}"
            )
    if not columns:
        raise DatasetError(f"no feature column is left besides the target {target!r}: the table needs feature columns")
    return {"kind": "table", "target": str(target), "columns": columns}, notes


def encode_table(frame: Any, preprocess: dict[str, Any]) -> torch.Tensor:
    """Feature vectors from table rows, encoded like the train split (``Dataset.preprocess`` of a table).

    Args:
        frame: A pandas DataFrame with (at least) the recipe's columns; the target column is not needed.
        preprocess: The ``{"kind": "table", ...}`` recipe stored in the dataset (and in a saved model).

    Returns:
        Float32 ``N x 1 x 1 x F``.

    Raises:
        DatasetError: The recipe is not a table's, or a column is missing.
    """
    if not preprocess or preprocess.get("kind") != "table":
        raise DatasetError("encode_table needs the table recipe of a table dataset (Dataset.preprocess)")
    import pandas as pd

    missing = [c["name"] for c in preprocess["columns"] if c["name"] not in frame.columns]
    if missing:
        raise DatasetError(f"the rows lack column(s) {', '.join(missing)}: give every feature column of the training table")
    parts = []
    for spec in preprocess["columns"]:
        col = frame[spec["name"]]
        if spec["kind"] == "numeric":
            values = col.astype("float64").fillna(spec["median"]).to_numpy()
            parts.append(((values - spec["mean"]) / spec["std"])[:, None])
        else:
            text = np.asarray([None if pd.isna(v) else str(v) for v in col], dtype=object)
            parts.append((text[:, None] == np.asarray(spec["categories"], dtype=object)[None, :]).astype(np.float64))
    x = np.concatenate(parts, axis=1).astype(np.float32)
    return torch.from_numpy(x).reshape(len(x), 1, 1, x.shape[1]).contiguous()


def _feature_stats(preprocess: dict[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...], list[str]]:
    """Per-feature mean/std (one-hot features: 0 and 1) and feature names, in encoding order."""
    mean, std, names = [], [], []
    for spec in preprocess["columns"]:
        if spec["kind"] == "numeric":
            mean.append(spec["mean"])
            std.append(spec["std"])
            names.append(spec["name"])
        else:
            mean += [0.0] * len(spec["categories"])
            std += [1.0] * len(spec["categories"])
            names += [f"{spec['name']}={c}" for c in spec["categories"]]
    return tuple(mean), tuple(std), names


def _classes(values: Any, target: str) -> list[Any]:
    """Sorted distinct target values; a float target must hold whole numbers."""
    import pandas as pd

    distinct = pd.unique(values)
    if pd.api.types.is_float_dtype(values) and not np.isfinite(distinct).all():
        raise DatasetError(f"target {target!r} has infinite values: replace them, or drop those rows")
    if pd.api.types.is_float_dtype(values) and not np.all(np.mod(distinct, 1) == 0):
        example = next(v for v in distinct if v % 1)
        raise DatasetError(
            f"target {target!r} has fractional values (e.g. {example}): classify by binning it first, or regress it with --loss mse (loss=mse)"
        )
    try:
        return sorted(distinct)
    except TypeError:  # mixed types
        return sorted(distinct, key=str)


def _class_name(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def load_table(ref: Reference, seed: int, name: str) -> Dataset:
    """Loads ``table:PATH?target=COLUMN[&test_fraction=&test=&sep=&drop=&max_categories=]``.

    Args:
        ref: The parsed reference (absolute paths).
        seed: Seed of the held-out split (unused with ``test=``).
        name: The dataset's name (its canonical reference).

    Raises:
        DatasetError: A missing file, a missing target column (the message lists the columns), fewer than 2
            classes, a fractional target, infinite values, an unsupported column type, test rows with a
            target the train rows lack.
    """
    target = ref.options["target"]
    sep = ref.option("sep")
    frame = read_table(ref.target, sep)
    if target not in frame.columns:
        cols = ", ".join(map(str, frame.columns))
        raise DatasetError(f"{name}: no column {target!r} in {Path(ref.target).name}; its columns: {cols}")
    drop = [c.strip() for c in ref.option("drop", "").split(",") if c.strip()]
    unknown = [c for c in drop if c not in frame.columns]
    if unknown:
        raise DatasetError(f"{name}: drop= names unknown column(s) {', '.join(unknown)}; columns: {', '.join(map(str, frame.columns))}")
    if target in drop:
        raise DatasetError(f"{name}: the target {target!r} cannot be dropped; remove it from drop=")
    frame = frame.drop(columns=drop)
    _check_finite(frame, target, Path(ref.target).name)
    before = len(frame)
    frame = frame[frame[target].notna()].reset_index(drop=True)
    dropped = before - len(frame)
    if "test" in ref.options:
        test = read_table(ref.options["test"], sep)
        if target not in test.columns:
            raise DatasetError(f"{name}: the test table has no column {target!r}; give it the train table's columns")
        test = test.drop(columns=[c for c in drop if c in test.columns])
        _check_finite(test, target, Path(ref.options["test"]).name)
        t_before = len(test)
        test = test[test[target].notna()].reset_index(drop=True)
        dropped += t_before - len(test)
        train = frame
        split = f"test table {Path(ref.options['test']).name}"
    else:
        train, test, split = frame, None, None
    loss = ref.option("loss")
    if is_regression_loss(loss):
        train, test, train_y, test_y, split = _regression_targets(train, test, target, ref, name, seed)
        classes = None
    else:
        train, test, train_y, test_y, split, classes = _class_targets(train, test, target, ref, name, seed, split)
    recipe, notes = _fit(train, target, int(ref.option("max_categories", str(_MAX_CATEGORIES))))
    train_x, test_x = encode_table(train, recipe), encode_table(test, recipe)
    mean, std, features = _feature_stats(recipe)
    recipe["features"] = features
    left_out = f"; left out: {', '.join(notes)}" if notes else ""
    what = f"loss {loss}, regression" if classes is None else f"{len(classes)} classes"
    return Dataset(
        name=name, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
        num_classes=1 if classes is None else len(classes), input_shape=(1, 1, int(train_x.shape[3])), augment="none",
        source=(f"table {ref.target} (target {target!r}, {what}, {train_x.shape[3]} features, "
                f"{len(train_y):,}/{len(test_y):,} rows, {split}; dropped {dropped} row(s) with a missing target"
                f"{left_out})"),
        mean=mean, std=std, class_names=None if classes is None else tuple(_class_name(v) for v in classes),
        preprocess=recipe, loss=loss,
    )


def _class_targets(train: Any, test: Any, target: str, ref: Reference, name: str, seed: int, split: str | None):
    """Class labels: ``(train, test, train_y, test_y, split, classes)``, a stratified held-out test part."""
    classes = _classes(train[target], target)
    if len(classes) < 2:
        raise DatasetError(f"{name}: target {target!r} has {len(classes)} distinct value(s); a classifier needs at least 2 classes")
    index = {v: i for i, v in enumerate(classes)}
    labels = torch.tensor([index[v] for v in train[target]], dtype=torch.int64)
    if test is None:
        fraction = parse_fraction(ref.option("test_fraction", "0.2"), name)
        n_test = max(1, round(fraction * len(labels)))
        if n_test >= len(labels):
            raise DatasetError(f"{name}: {len(labels)} rows are too few to hold out a test split; add rows")
        train_idx, test_idx = stratified_split(labels, n_test, torch.Generator().manual_seed(int(seed)))
        test = train.iloc[test_idx.numpy()].reset_index(drop=True)
        train = train.iloc[train_idx.numpy()].reset_index(drop=True)
        train_y, test_y = labels[train_idx].contiguous(), labels[test_idx].contiguous()
        split = f"stratified held-out {fraction:g}, seed {int(seed)}"
    else:
        unseen = sorted({_class_name(v) for v in test[target] if v not in index})
        if unseen:
            raise DatasetError(f"{name}: the test table has target value(s) {', '.join(unseen[:5])} that the train table lacks")
        train_y = labels
        test_y = torch.tensor([index[v] for v in test[target]], dtype=torch.int64)
    return train, test, train_y, test_y, split, classes


def _regression_targets(train: Any, test: Any, target: str, ref: Reference, name: str, seed: int):
    """Float targets ``N x 1`` of a regression loss: ``(train, test, train_y, test_y, split)``, a seeded
    random held-out test part."""
    def values(frame: Any) -> torch.Tensor:
        if not _is_numeric(frame[target]):
            raise DatasetError(f"{name}: target {target!r} is not numeric; a regression loss needs numbers "
                               "(drop loss= to classify it)")
        y = torch.tensor(frame[target].astype("float64").to_numpy(), dtype=torch.float32).reshape(-1, 1)
        if not bool(torch.isfinite(y).all()):
            raise DatasetError(f"{name}: target {target!r} has infinite values: replace them, or drop those rows")
        return y

    y = values(train)
    split = f"test table {Path(ref.options['test']).name}" if test is not None else ""
    if test is None:
        fraction = parse_fraction(ref.option("test_fraction", "0.2"), name)
        n_test = max(1, round(fraction * len(y)))
        if n_test >= len(y):
            raise DatasetError(f"{name}: {len(y)} rows are too few to hold out a test split; add rows")
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(int(seed)))
        test = train.iloc[order[:n_test].numpy()].reset_index(drop=True)
        train = train.iloc[order[n_test:].numpy()].reset_index(drop=True)
        return train, test, y[order[n_test:]].contiguous(), y[order[:n_test]].contiguous(), \
            f"random held-out {fraction:g}, seed {int(seed)}"
    return train, test, y, values(test), split
