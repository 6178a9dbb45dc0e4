"""Your data, your model: the search on user data (arrays, an image folder, a table) and user spaces
(a define-by-run function, a file reference), from Python and from the shell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import nas
from nas.cli import main
from nas.search.config import SearchConfig, SearchError

ROOT = __import__("pathlib").Path(__file__).resolve().parents[3]


def blobs(n: int, classes: int = 3, features: int = 6, seed: int = 0):
    """Separable Gaussian blobs: class k centred at 3 e_k."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.standard_normal((n, features)).astype(np.float32)
    x[np.arange(n), y] += 3.0
    return x, y


def test_arrays_from_python_are_searched_and_saved_for_the_workers(tmp_path):
    train, test = blobs(300), blobs(100, seed=1)
    result = nas.search(space="mlp_looks_linear", data=(train, test), trials=2, workers=1, early_steps=3,
                        probe_size=32, group_size=4, bounds={"depth": [2, 4], "width": [32, 64]},
                        runs_dir=str(tmp_path), study="arrays")
    assert result.stats["total_complete"] == 2
    ref = result.search_config.dataset
    assert ref.startswith("saved:") and (tmp_path / "data").is_dir()  # a file any worker can load
    assert result.study.user_attrs["dataset_info"]["num_classes"] == 3
    with pytest.raises(SearchError, match="not both"):
        nas.search(data=(train, test), dataset="synthetic")


def test_a_define_by_run_function_with_lazy_layers_is_a_space(tmp_path):
    def space(trial):
        width = trial.suggest_int("width", 4, 8)
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(width), nn.ReLU(), nn.LazyLinear(10))

    result = nas.search(space=space, dataset="synthetic", trials=2, workers=1, early_steps=2, probe_size=16,
                        group_size=4, runs_dir=str(tmp_path), study="fn")
    assert result.stats["total_complete"] == 2
    params = [t.params for t in result.study.trials]
    assert all(4 <= p["width"] <= 8 and "lr" in p and "batch_size" in p for p in params)  # training fields tuned


def test_a_table_gets_the_mlp_space_and_a_target_is_checked(tmp_path):
    x, y = blobs(200)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    frame["kind"] = np.where(x[:, 0] > 0, "hi", "lo")  # a categorical column
    frame["label"] = np.array(["a", "b", "c"])[y]
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    c = SearchConfig(dataset=f"table:{path}", target="label", trials=1, runs_dir=str(tmp_path)).resolve(gpu=False)
    assert c.space == "mlp_looks_linear" and c.dataset.endswith("?target=label")
    assert c.resolved["data"].num_classes == 3 and c.study.startswith("mlp_looks_linear-t-")
    with pytest.raises(SearchError, match="--target label is for a table dataset"):
        SearchConfig(dataset="synthetic", target="label", trials=1).resolve(gpu=False)


def test_an_image_folder_budget_search_keeps_what_inference_needs(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("test", 8)):
        for k, colour in enumerate(((255, 0, 0), (0, 0, 255))):
            folder = tmp_path / "img" / split / f"class{k}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(np.array(colour) + rng.integers(-40, 40, (12, 12, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    result = nas.search(space="resnet_cifar", dataset=f"folder:{tmp_path / 'img'}", budget="30s", smoke=True,
                        workers=1, epochs=1, probe_size=8, group_size=4, runs_dir=str(tmp_path), study="img")
    assert result.best is not None
    model, info = nas.load_model(result.best["model"], with_info=True)
    assert info["class_names"] == ["class0", "class1"] and len(info["mean"]) == 3 and len(info["std"]) == 3
    assert info["input_shape"] == [3, 12, 12]
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 12, 12)).shape == (1, 2)


def test_the_shell_takes_a_space_file_and_says_what_is_wrong_with_a_bad_one(tmp_path, capsys):
    space = ROOT / "examples" / "my_space.py"
    code = main(["search", "--space", f"{space}:space", "--dataset", "synthetic", "--trials", "1", "--workers", "1",
                 "--early-steps", "2", "--probe-size", "16", "--group-size", "4", "--runs-dir", str(tmp_path),
                 "--study", "file", "--no-progress"])
    assert code == 0
    capsys.readouterr()
    assert main(["search", "--space", f"{tmp_path / 'nope.py'}:space", "--dataset", "synthetic", "--trials", "1",
                 "--runs-dir", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "nope.py" in err[0]


def test_a_model_that_does_not_fit_the_data_is_one_error_before_anything_is_written(tmp_path):
    def seven_outputs(trial):
        width = trial.suggest_int("width", 4, 8)
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(width), nn.ReLU(), nn.LazyLinear(7))

    with pytest.raises(SearchError, match=r"outputs of shape \(2, 7\) .* the data has 10 classes"):
        nas.search(space=seven_outputs, dataset="synthetic", trials=1, workers=1, runs_dir=str(tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()
