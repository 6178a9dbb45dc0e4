"""Using a saved model: nas.load_model(..., with_transform=True), predictions on image files, export, and
``python -m nas predict``.

The model file holds a real resnet_cifar model (random weights) with the input recipe of a real image
folder dataset, written with the keys a budget search's ``best_model.pt`` has. References: the inputs are
prepared by hand (PIL convert + resize, / 255, (x - mean) / std with numpy) and the PyTorch model is run on
them directly; the exported TorchScript / ONNX files are run on the same inputs (max |difference| printed).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nas
from nas.cli import main
from nas.data import load_dataset
from nas.inference import InferenceError, SavedModel
from search_spaces import get_space

SIZE = (12, 10)  # H, W of the training images
BOUNDS = {"blocks": 1, "width": 8, "batch_size": 32, "norm": "bn", "lr": [0.01, 0.05]}
CLASSES = ("cat", "dog", "fox")


def _write_folder(root: Path) -> None:
    rng = np.random.default_rng(0)
    for k, colour in enumerate(((200, 30, 30), (30, 30, 200), (30, 200, 30))):
        (root / CLASSES[k]).mkdir(parents=True)
        for i in range(4):
            pixels = np.clip(np.array(colour) + rng.integers(-40, 40, (*SIZE, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / CLASSES[k] / f"{i}.png")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A ``best_model.pt`` as the budget search writes it, for a 3-class RGB folder dataset."""
    root = tmp_path_factory.mktemp("inference")
    _write_folder(root / "img")
    data = load_dataset(f"folder:{root / 'img'}?test_fraction=0.25")
    assert data.preprocess["kind"] == "image" and data.class_names == CLASSES
    torch.manual_seed(0)
    space = get_space("resnet_cifar", **BOUNDS)
    config = space.validate({"lr": 0.02})
    model = space.build(config, 3, data.input_shape)
    with torch.no_grad():  # non-trivial batch-norm statistics, so eval mode matters
        model.train()
        model(torch.randn(16, *data.input_shape) * 2 + 0.5)
    path = root / "best_model.pt"
    torch.save({"format": 1, "space": "resnet_cifar", "config": config, "bounds": space.bounds,
                "dataset": f"folder:{root / 'img'}", "num_classes": 3, "input_shape": list(data.input_shape),
                "state_dict": model.state_dict(), "test_acc": 0.5, "trial": 0, "mean": list(data.mean),
                "std": list(data.std), "class_names": list(data.class_names), "preprocess": data.preprocess}, path)
    return path


@pytest.fixture(scope="module")
def pngs(model_file) -> list[Path]:
    """Three new files: an RGB PNG of another size, a grayscale PNG, an RGBA PNG."""
    rng = np.random.default_rng(1)
    folder = model_file.parent / "new"
    folder.mkdir()
    files = [folder / "a.png", folder / "b.png", folder / "c.png"]
    Image.fromarray(rng.integers(0, 255, (20, 16, 3), dtype=np.uint8)).save(files[0])
    Image.fromarray(rng.integers(0, 255, (12, 10), dtype=np.uint8), mode="L").save(files[1])
    Image.fromarray(rng.integers(0, 255, (9, 7, 4), dtype=np.uint8), mode="RGBA").save(files[2])
    return files


def _by_hand(files, recipe) -> torch.Tensor:
    """The inputs as the training images were made: RGB, bilinear resize to (W, H), / 255, per-channel z."""
    h, w = recipe["size"]
    arrays = [np.asarray(Image.open(f).convert("RGB").resize((w, h), Image.BILINEAR), dtype=np.float64) / 255.0
              for f in files]
    x = np.stack(arrays).transpose(0, 3, 1, 2)
    x = (x - np.array(recipe["mean"])[None, :, None, None]) / np.array(recipe["std"])[None, :, None, None]
    return torch.tensor(x, dtype=torch.float32)


def test_predict_matches_the_pytorch_model_on_inputs_prepared_by_hand(model_file, pngs):
    saved = nas.load_model(model_file, with_transform=True)
    assert isinstance(saved, SavedModel) and saved.class_names == list(CLASSES)
    x = _by_hand(pngs, saved.info["preprocess"])
    assert torch.allclose(saved.transform(pngs), x, atol=1e-5)  # grayscale and RGBA files made RGB
    plain = nas.load_model(model_file)  # the existing entry point: the same weights, eval mode
    with torch.no_grad():
        probs = torch.softmax(plain(x), dim=1)
    predictions = saved.predict(pngs, top=3)
    assert [p.source for p in predictions] == [str(f) for f in pngs]
    for p, row in zip(predictions, probs):
        assert p.label == CLASSES[int(row.argmax())] and p.probability == pytest.approx(float(row.max()), abs=1e-5)
        assert sum(q for _, q in p.top) == pytest.approx(1.0, abs=1e-5)  # 3 of 3 classes
        assert [q for _, q in p.top] == sorted((q for _, q in p.top), reverse=True)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_export_torchscript_and_onnx_give_the_pytorch_outputs(model_file, pngs, tmp_path):
    saved = SavedModel.load(model_file)
    x = saved.transform(pngs)
    with torch.no_grad():
        expected = saved.model(x)
    ts = saved.export(tmp_path / "m.pt", example=x)
    assert ts.format == "torchscript" and ts.max_abs_diff < 1e-4
    with torch.no_grad():  # an independent run of the file: batch of one, another size than traced
        assert torch.allclose(torch.jit.load(str(tmp_path / "m.pt"))(x[:1]), expected[:1], atol=1e-4)
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    onnx_export = saved.export(tmp_path / "m.onnx", example=x)
    assert onnx_export.format == "onnx" and onnx_export.max_abs_diff < 1e-4
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x[:2].numpy()})[0]  # the batch dimension is dynamic
    assert np.abs(got - expected[:2].numpy()).max() < 1e-4
    print(f"export max |diff| on 3 PNGs: torchscript {ts.max_abs_diff:.3g}, onnx {onnx_export.max_abs_diff:.3g}")


def test_the_cli_predicts_as_json_and_exports(model_file, pngs, tmp_path, capsys):
    assert main(["predict", "--model", str(model_file), *map(str, pngs), "--top", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    saved = SavedModel.load(model_file)
    by_hand = torch.softmax(saved.model(_by_hand(pngs, saved.info["preprocess"])), dim=1).detach()
    assert [r["file"] for r in out["predictions"]] == [str(f) for f in pngs] and out["export"] is None
    for r, row in zip(out["predictions"], by_hand):
        assert r["class"] == CLASSES[int(row.argmax())] and len(r["top"]) == 2
        assert r["probability"] == pytest.approx(float(row.max()), abs=1e-5)
    assert main(["predict", "--model", str(model_file), str(pngs[0]), "--export", str(tmp_path / "m.ts")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["file", "class", "probability"] and str(pngs[0]) in lines[2]
    assert lines[-1].startswith("exported torchscript:") and "on 1 input(s)" in lines[-1]


@pytest.mark.parametrize("case", ["missing model", "not a model", "not an image", "no inputs", "onnx missing"])
def test_bad_input_is_one_line_and_exit_2(model_file, pngs, tmp_path, capsys, monkeypatch, case):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    args = {
        "missing model": ["--model", str(tmp_path / "nope.pt"), str(pngs[0])],
        "not a model": ["--model", str(text), str(pngs[0])],
        "not an image": ["--model", str(model_file), str(pngs[0]), str(text)],
        "no inputs": ["--model", str(model_file)],
        "onnx missing": ["--model", str(model_file), "--export", str(tmp_path / "m.onnx")],
    }[case]
    if case == "onnx missing":
        monkeypatch.setitem(__import__("sys").modules, "onnx", None)  # import onnx raises ImportError
    assert main(["predict", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: predict")
    expected = {"missing model": "no model file", "not a model": "cannot read", "not an image": "notes.png",
                "no inputs": "at least one IMAGE", "onnx missing": "pip install gradnas[export]"}[case]
    assert expected in err[0]


def test_library_errors_are_value_errors(model_file):
    saved = SavedModel.load(model_file)
    with pytest.raises(InferenceError, match="top must be"):
        saved.predict([], top=4)
    with pytest.raises(InferenceError, match="this model takes N x 3x12x10"):
        saved.transform(torch.zeros(2, 1, 12, 10))
    with pytest.raises(ValueError, match="no model file"):
        nas.load_model("missing.pt", with_transform=True)


def test_a_table_model_predicts_each_row_of_a_csv(tmp_path, capsys):
    import pandas as pd

    from nas.data import encode_table

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    x = rng.standard_normal((60, 4))
    x[np.arange(60), y] += 3
    frame = pd.DataFrame(x, columns=list("abcd"))
    frame["kind"] = np.where(x[:, 0] > 0, "hi", "lo")
    frame["label"] = np.array(["p", "q", "r"])[y]
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = load_dataset(f"table:{tmp_path / 't.csv'}?target=label")
    space = get_space("mlp_looks_linear")
    config = space.validate({})
    torch.manual_seed(0)
    model = space.build(config, 3, data.input_shape).eval()
    torch.save({"format": 1, "space": "mlp_looks_linear", "config": config, "bounds": space.bounds, "dataset": "t",
                "num_classes": 3, "input_shape": list(data.input_shape), "state_dict": model.state_dict(),
                "class_names": list(data.class_names), "preprocess": data.preprocess}, tmp_path / "m.pt")
    rows = frame.drop(columns=["label"]).head(3)
    rows.to_csv(tmp_path / "new.csv", index=False)
    assert main(["predict", "--model", str(tmp_path / "m.pt"), str(tmp_path / "new.csv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["predictions"]
    with torch.no_grad():  # the table module's own encoding of the rows, run through the model directly
        probs = torch.softmax(model(encode_table(rows, data.preprocess).reshape(3, *data.input_shape)), dim=1)
    assert [r["file"] for r in out] == [f"{tmp_path / 'new.csv'} row {i}" for i in range(3)]
    assert [r["class"] for r in out] == [["p", "q", "r"][int(i)] for i in probs.argmax(dim=1)]
    assert [r["probability"] for r in out] == pytest.approx(probs.max(dim=1).values.tolist(), abs=1e-5)
