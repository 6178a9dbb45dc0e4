"""Using a saved model: ``best_model.pt`` with its input transform, predictions on files, and export.

    import nas

    saved = nas.load_model("runs/STUDY/best_model.pt", with_transform=True)   # a SavedModel
    x = saved.transform(["cat.png", "dog.jpg"])      # N x C x H x W, prepared like the training inputs
    saved.model(x)                                   # logits (the torch.nn.Module, eval mode)
    saved.predict(["cat.png", "dog.jpg"], top=2)     # per file: the class name and its probability
    saved.export("model.onnx")                       # or "model.pt" (TorchScript)

The transform is the one the training data was prepared with, read from the checkpoint (``preprocess``,
``mean``/``std``, ``input_shape``; see :func:`nas.search.api.load_model`):

* a model trained on an image folder (``folder:PATH``), on mnist5k or on a torchvision set (they record the
  same image recipe): images (paths or PIL images) are converted to the
  training mode (RGB, or one grayscale channel: a colour image of a grayscale model is converted to
  grayscale, a grayscale one of a colour model to RGB; alpha is dropped), resized bilinearly to the
  training size, scaled to [0, 1] and normalized per channel with the train split's mean and std
  (:func:`nas.data.prepare_images`);
* a model trained on a table (``table:PATH``): a pandas DataFrame (or a CSV/Parquet path) with the training
  columns, encoded like the train split (:func:`nas.data.encode_table`);
* any other model: tensors of raw inputs of the training shape, normalized with the recorded ``mean``/``std``
  when the data recorded them (arrays from Python), unchanged otherwise. ``synthetic`` has no image files
  behind it, so its models take tensors only.

Probabilities are the softmax of the logits. Export: TorchScript by ``torch.jit.trace`` on an input of the
training shape (any file name but ``.onnx``), ONNX by the TorchScript-based ``torch.onnx.export`` with a
dynamic batch dimension (needs the ``onnx`` package: ``pip install gradnas[export]``; ``onnxruntime`` too
to check the export). Every export is checked: the exported model is run on the same inputs as the PyTorch
model and the largest absolute difference of their outputs is returned.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Sequence

import torch

__all__ = ["InferenceError", "SavedModel", "Prediction", "Export", "EXPORT_FORMATS", "export_format"]

#: Export formats, chosen from the file name by :func:`export_format`.
EXPORT_FORMATS = ("torchscript", "onnx")


class InferenceError(ValueError):
    """A model file or an input that cannot be used; the message is one line saying what to do."""


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One input's prediction: ``label`` (class name, or the index as text) with ``probability``; ``top``
    holds the ``k`` most probable ``(label, probability)`` pairs, best first."""

    source: str
    index: int
    label: str
    probability: float
    top: tuple[tuple[str, float], ...]

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.source, "class": self.label, "index": self.index, "probability": self.probability,
                "top": [{"class": c, "probability": p} for c, p in self.top]}


@dataclasses.dataclass(frozen=True)
class Export:
    """An exported model: where, in which format, and the largest absolute difference between its outputs
    and the PyTorch model's on ``checked_on`` inputs (None when onnxruntime is missing to run an ONNX file)."""

    path: Path
    format: str
    max_abs_diff: float | None
    checked_on: int


def export_format(path: str | Path, fmt: str | None = None) -> str:
    """The export format: ``fmt`` if given, else ``"onnx"`` for a ``.onnx`` file and ``"torchscript"`` for
    any other name (``.pt``, ``.ts``)."""
    if fmt is None:
        return "onnx" if str(path).lower().endswith(".onnx") else "torchscript"
    if fmt not in EXPORT_FORMATS:
        raise InferenceError(f"unknown export format {fmt!r}; valid: {', '.join(EXPORT_FORMATS)}")
    return fmt


class SavedModel:
    """A model saved by a search with what inference needs (module docstring). ``model``: the
    ``torch.nn.Module`` in eval mode; ``info``: the checkpoint's entries besides the weights."""

    def __init__(self, model: torch.nn.Module, info: dict[str, Any], path: str | Path | None = None) -> None:
        self.model, self.info = model, dict(info)
        self.path = None if path is None else Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "SavedModel":
        """Read a ``best_model.pt``.

        Raises:
            InferenceError: the file is missing or is not a model saved by a gradnas search.
        """
        from .search.api import load_model

        p = Path(path)
        if not p.is_file():
            raise InferenceError(f"no model file at {p}: give the best_model.pt a search wrote "
                                 f"(runs/STUDY/best_model.pt)")
        if not zipfile.is_zipfile(p):  # what torch.save writes
            raise InferenceError(f"cannot read {p} as a gradnas model (not a PyTorch checkpoint); give a "
                                 f"runs/STUDY/best_model.pt")
        try:
            model, info = load_model(p, with_info=True)
        except (KeyError, TypeError) as exc:
            raise InferenceError(f"{p} is not a model saved by a gradnas search (missing {exc}); give a "
                                 f"runs/STUDY/best_model.pt") from None
        except Exception as exc:  # torch.load of a non-checkpoint: pickle, zip or runtime errors
            reason = " ".join(str(exc).split())[:120]
            raise InferenceError(f"cannot read {p} as a gradnas model ({type(exc).__name__}: {reason}); give a "
                                 f"runs/STUDY/best_model.pt") from None
        return cls(model, info, p)

    # ---------------------------------------------------------------- what the model expects
    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.info["input_shape"])

    @property
    def class_names(self) -> list[str]:
        """The name of each class index (the index as text where the data named none)."""
        names = self.info.get("class_names")
        k = int(self.info.get("num_classes") or 0)
        return [str(c) for c in names] if names else [str(i) for i in range(k)]

    @property
    def input_kind(self) -> str:
        """``"image"`` (reads image files), ``"table"`` (reads rows) or ``"tensor"`` (tensors only)."""
        recipe = self.info.get("preprocess") or {}
        return recipe.get("kind") if recipe.get("kind") in ("image", "table") else "tensor"

    def transform(self, inputs: Any) -> torch.Tensor:
        """Model inputs (float32, ``N x`` the training shape) prepared like the training data.

        Args:
            inputs: image paths or PIL images (image models); a DataFrame or a CSV/Parquet path (table
                models); a tensor of raw inputs (any model; one input may omit the batch dimension).

        Raises:
            InferenceError: an input this model cannot read (one line, naming the input).
        """
        from .data import DatasetError

        if isinstance(inputs, torch.Tensor):
            return self._from_tensor(inputs)
        try:
            if self.input_kind == "table":
                from .data import encode_table

                x = encode_table(_read_table(inputs), self.info["preprocess"])
            elif self.input_kind == "image":
                from .data import prepare_images

                items = [inputs] if isinstance(inputs, (str, os.PathLike)) or hasattr(inputs, "convert") else list(inputs)
                if not items:
                    raise InferenceError("no inputs: give at least one image")
                x = prepare_images(items, self.info["preprocess"])
            else:
                raise InferenceError(
                    f"this model's data ({self.info.get('dataset')}) recorded no input recipe, so it cannot read "
                    f"files: give tensors of shape N x {'x'.join(map(str, self.input_shape))} (models trained on "
                    f"folder:PATH read images, on table:PATH rows)")
        except DatasetError as exc:
            raise InferenceError(str(exc)) from None
        return x.reshape(x.shape[0], *self.input_shape)

    def _from_tensor(self, x: torch.Tensor) -> torch.Tensor:
        shape = self.input_shape
        x = x.to(torch.float32)
        if tuple(x.shape) == shape:
            x = x.unsqueeze(0)
        if tuple(x.shape[1:]) != shape:
            raise InferenceError(f"inputs of shape {tuple(x.shape)}; this model takes N x {'x'.join(map(str, shape))}")
        mean, std = self.info.get("mean"), self.info.get("std")
        if mean is None or std is None or self.input_kind != "tensor":
            return x  # table and image recipes start from files; a tensor is taken as already prepared
        dim = 3 if len(mean) == shape[-1] and len(mean) != shape[0] else 1
        view = [1] * x.dim()
        view[dim] = -1
        return (x - torch.tensor(mean).view(view)) / torch.tensor(std).view(view)

    # ---------------------------------------------------------------- predictions
    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax of the model's logits on prepared inputs ``x``."""
        return torch.softmax(self.model(x).float(), dim=1)

    def predict(self, inputs: Sequence[Any], top: int = 1) -> list[Prediction]:
        """The most probable class of each input (image paths or PIL images, table rows, or a tensor).

        Args:
            inputs: what :meth:`transform` takes.
            top: how many classes each prediction lists (1..number of classes).

        Raises:
            InferenceError: an unreadable input, or ``top`` out of range.
        """
        k = len(self.class_names)
        if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= max(1, k):
            raise InferenceError(f"top must be an integer in 1..{k} (the model's classes), got {top!r}")
        x = self.transform(inputs)
        probs = self.probabilities(x)
        sources = _sources(inputs, len(x))
        names = self.class_names
        out = []
        for i, row in enumerate(probs):
            p, idx = torch.topk(row, top)
            pairs = tuple((names[int(j)] if int(j) < len(names) else str(int(j)), float(v)) for v, j in zip(p, idx))
            out.append(Prediction(sources[i], int(idx[0]), pairs[0][0], pairs[0][1], pairs))
        return out

    # ---------------------------------------------------------------- export
    def export(self, path: str | Path, fmt: str | None = None, example: torch.Tensor | None = None) -> Export:
        """Write the model as TorchScript or ONNX (format from the name: :func:`export_format`) and check it.

        Args:
            path: the file to write (its folder is created).
            fmt: ``"torchscript"`` or ``"onnx"`` (default: from the file name).
            example: prepared inputs to trace and compare on (default: 4 seeded standard-normal inputs of
                the training shape: the prepared inputs' scale).

        Returns:
            :class:`Export` with the largest absolute output difference from the PyTorch model.

        Raises:
            InferenceError: ONNX without the ``onnx`` package, or a folder that cannot be written.
        """
        fmt = export_format(path, fmt)
        path = Path(path)
        if example is None:
            example = torch.randn(4, *self.input_shape, generator=torch.Generator().manual_seed(0))
        example = self._from_tensor(example) if self.input_kind == "tensor" and example.dim() == len(self.input_shape) else example
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InferenceError(f"cannot write {path} ({exc.strerror or exc})") from None
        with torch.no_grad():
            expected = self.model(example)
        if fmt == "torchscript":
            diff = _export_torchscript(self.model, example, expected, path)
        else:
            diff = _export_onnx(self.model, example, expected, path)
        return Export(path=path, format=fmt, max_abs_diff=diff, checked_on=int(example.shape[0]))


def _export_torchscript(model: torch.nn.Module, example: torch.Tensor, expected: torch.Tensor, path: Path) -> float:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch marks TorchScript deprecated in favour of torch.export
        traced = torch.jit.trace(model, example)
        try:
            torch.jit.save(traced, str(path))
        except (OSError, RuntimeError) as exc:
            raise InferenceError(f"cannot write {path} ({' '.join(str(exc).split())[:120]})") from None
        got = torch.jit.load(str(path))(example)
    return float((got - expected).abs().max())


def _export_onnx(model: torch.nn.Module, example: torch.Tensor, expected: torch.Tensor, path: Path) -> float | None:
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise InferenceError("ONNX export needs the onnx package: pip install gradnas[export] "
                             "(or export TorchScript: a .pt file name)") from None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"input": example.numpy()})[0])
    return float((got - expected).abs().max())


def _read_table(inputs: Any):
    import pandas as pd

    if isinstance(inputs, pd.DataFrame):
        return inputs
    if isinstance(inputs, (list, tuple)) and len(inputs) == 1:
        inputs = inputs[0]
    if isinstance(inputs, (str, os.PathLike)):
        p = Path(inputs)
        if not p.is_file():
            raise InferenceError(f"no table at {p}")
        try:
            return pd.read_parquet(p) if p.suffix.lower() in (".parquet", ".pq") else pd.read_csv(p)
        except Exception as exc:
            raise InferenceError(f"cannot read {p} as a table ({type(exc).__name__})") from None
    raise InferenceError(f"a table model reads a DataFrame or a CSV/Parquet path, got {type(inputs).__name__}")


def _sources(inputs: Any, n: int) -> list[str]:
    """What each of the ``n`` prepared inputs came from: a file's name, ``FILE row i`` for a table's rows,
    ``input i`` otherwise."""
    items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if len(items) == n:
        return [_name(item, i) for i, item in enumerate(items)]
    if len(items) == 1 and isinstance(items[0], (str, os.PathLike)):
        return [f"{os.fspath(items[0])} row {i}" for i in range(n)]
    return [f"input {i}" for i in range(n)]


def _name(item: Any, i: int) -> str:
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    filename = getattr(item, "filename", None)  # a PIL image opened from a file
    return str(filename) if filename else f"input {i}"
