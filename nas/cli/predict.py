"""``python -m nas predict``: classify files with a saved model, or export it (TorchScript, ONNX)."""

from __future__ import annotations

import argparse
import json

from .args import CLIError, Command, int_in
from .output import fmt, table

__all__ = ["Predict"]


class Predict(Command):
    """Classify images (or a table's rows) with a saved model: its class and probability per file,
    the inputs prepared like the training data (mode, size, normalization read from the model file). With
    --export FILE.pt|FILE.onnx, write the model as TorchScript or ONNX and print the largest difference
    between its outputs and the PyTorch model's. Example: python -m nas predict --model
    runs/STUDY/best_model.pt cat.png dog.jpg --top 2"""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("inputs", nargs="*", metavar="IMAGE",
                       help="image files (a model trained on folder:PATH; converted to the training mode, RGB or "
                            "grayscale, and size), or one CSV/Parquet file (a model trained on table:PATH)")
        p.add_argument("--model", required=True, metavar="PATH",
                       help="the model file a search wrote (runs/STUDY/best_model.pt)")
        p.add_argument("--top", type=int_in(1, 1000), default=1, metavar="K",
                       help="list the K most probable classes of each input (default: %(default)s)")
        p.add_argument("--json", action="store_true",
                       help="print one JSON object (model, predictions, export) instead of a table")
        p.add_argument("--export", metavar="FILE",
                       help="write the model to FILE: TorchScript for .pt/.ts, ONNX for .onnx (needs "
                            "pip install gradnas[export]); checked against the PyTorch model on the given "
                            "inputs, or on 4 random inputs of the training shape")

    def take_action(self, args: argparse.Namespace) -> int:
        from ..inference import InferenceError, SavedModel

        if not args.inputs and not args.export:
            raise CLIError("predict: give at least one IMAGE to classify, or --export FILE (see --help)")
        try:
            saved = SavedModel.load(args.model)
            predictions = saved.predict(args.inputs, top=min(args.top, len(saved.class_names))) if args.inputs else []
            example = saved.transform(args.inputs) if args.inputs and args.export else None
            exported = saved.export(args.export, example=example) if args.export else None
        except InferenceError as exc:
            raise CLIError(f"predict: {exc}") from None
        if args.json:
            print(json.dumps({
                "model": str(saved.path), "predictions": [p.as_dict() for p in predictions],
                "export": None if exported is None else {
                    "path": str(exported.path), "format": exported.format, "max_abs_diff": exported.max_abs_diff,
                    "checked_on": exported.checked_on},
            }, indent=2))
            return 0
        if predictions:
            header = ["file", "class", "probability"]
            rows = [[p.source, p.label, round(p.probability, 4)] for p in predictions]
            if args.top > 1:
                header.append(f"top {len(predictions[0].top)}")
                for row, p in zip(rows, predictions):
                    row.append(", ".join(f"{c} {q:.3f}" for c, q in p.top))
            print(table(rows, header))
        if exported is not None:
            diff = ("not checked (pip install onnxruntime to run it)" if exported.max_abs_diff is None
                    else f"max |difference| from the PyTorch model {fmt(exported.max_abs_diff)} on "
                         f"{exported.checked_on} input(s)")
            print(f"exported {exported.format}: {exported.path} ({diff})")
        return 0
