"""The examples in examples/ run end to end on data each test writes itself, at tiny sizes: a custom space on
an image folder (PNGs written with PIL, a 30-second budget search through the command line in process), a
table (a CSV, the MLP space, from Python) and a Python-only search (arrays and a torch Dataset, a space
function, the script run as a user runs it)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import nas
from nas.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def load_example(path: Path):
    """An example file as a module (without running its ``__main__`` block)."""
    spec = importlib.util.spec_from_file_location(f"_example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_pngs(folder: Path, per_class: int = 20, size: int = 12) -> None:
    """Three classes of coloured noise (red, green, blue), ``per_class`` PNGs each, ``size`` x ``size``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, colour in {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}.items():
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.integers(-50, 50, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{i}.png")


@pytest.mark.integration
def test_image_folder_example_searches_its_space_and_saves_a_model_with_the_class_names(tmp_path, capsys):
    write_pngs(tmp_path / "images")
    space = EXAMPLES / "image_folder" / "space.py"
    code = main(["search", "--space", f"{space}:space", "--dataset", f"folder:{tmp_path / 'images'}",
                 "--budget", "30s", "--epochs", "1", "--smoke", "--workers", "1",
                 "--probe-size", "8", "--group-size", "4", "--early-steps", "2", "--runs-dir", str(tmp_path / "runs"),
                 "--study", "images", "--no-progress"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, captured.err
    assert "best trained model" in out
    model, info = nas.load_model(tmp_path / "runs" / "images" / "best_model.pt", with_info=True)
    assert info["class_names"] == ["blue", "green", "red"] and info["input_shape"] == [3, 12, 12]
    assert info["space"] == f"{space}:space" and info["config"]["width_mult"] == 0.25  # the smoke bounds
    from nas.data import prepare_images

    x = prepare_images([tmp_path / "images" / "red" / "0.png"], info["preprocess"])
    with torch.no_grad():
        assert model(x).shape == (1, 3)


def test_image_folder_example_space_and_demo_images(tmp_path):
    """The space's dimensions as documented, and make_images.py writes a folder gradnas reads."""
    from nas.data import load_dataset
    from search_spaces import get_space

    space = get_space(f"{EXAMPLES / 'image_folder' / 'space.py'}:space")
    names = {d["name"] for d in space.dimensions()}
    assert {"width_mult", "depth", "expand", "kernel", "activation", "lr", "batch_size"} <= names
    cpu = space.with_bounds(**space.cpu_bounds)  # what a budget search on a CPU searches by default
    assert cpu.bounds["depth"] == (1, 2) and space.smoke_bounds["width_mult"] == [0.25]
    largest = {"width_mult": 1.0, "depth": 3, "expand": 6, "kernel": 5, "activation": "hardswish"}
    model = space.build(space.validate(largest), num_classes=5, input_shape=(1, 32, 32), seed=0)  # lazy stem: 1 channel
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 5)
    load_example(EXAMPLES / "image_folder" / "make_images.py").main([str(tmp_path / "shapes"), "--per-class", "5",
                                                                     "--size", "8"])
    data = load_dataset(f"folder:{tmp_path / 'shapes'}")
    assert data.class_names == ("blue", "green", "red") and data.input_shape == (3, 8, 8)


def test_tabular_example_searches_a_csv_with_the_mlp_space(tmp_path, capsys, monkeypatch):
    example = load_example(EXAMPLES / "tabular.py")
    csv = example.write_demo_csv(tmp_path / "customers.csv", rows=200)
    monkeypatch.chdir(tmp_path)
    result = example.main([str(csv), "--target", "label", "--trials", "2", "--early-steps", "3", "--probe-size", "16",
                           "--bounds", '{"depth": [2, 3], "width": [32, 32]}', "--runs-dir", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert result.search_config.space == "mlp_looks_linear" and result.stats["total_complete"] == 2
    assert result.study.user_attrs["dataset_info"]["class_names"] == ["churn", "stay", "upgrade"]
    assert "3 classes, space mlp_looks_linear" in out and "candidates scored" in out


@pytest.mark.integration
def test_python_only_example_runs_as_a_script(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "python_only.py"), "--n-train", "240", "--n-test", "60", "--budget", "30s",
         "--epochs", "1", "--probe-size", "16", "--runs-dir", str(tmp_path / "runs")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    config = next(line for line in lines if line.startswith("config: "))
    assert all(k in config for k in ("'width'", "'depth'", "'kernel'", "'pool'", "'lr'"))
    acc = float(next(line for line in lines if line.startswith("test accuracy: ")).split()[-1])
    assert 0.0 <= acc <= 1.0
    assert any(line.startswith("model: ") and "accuracy on 100 new images" in line for line in lines)
    assert (tmp_path / "runs" / "python-only" / "best_model.pt").is_file()
    assert list((tmp_path / "runs" / "data").glob("*.pt"))  # the arrays and the Dataset, saved for the workers
