"""A user loss (nas/data/loss.py; regression tables and arrays), the --loss / --max-memory / --target options
of the search (nas/search/inputs.data_options, the CLI), and a streamed image folder searched end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import nas.data as data
from nas.cli import main
from nas.data import DatasetError, from_arrays, load_dataset, loss_reference, resolve_loss
from nas.search.inputs import SearchError, data_options

pytestmark = pytest.mark.usefixtures("fresh_cache")


def regression_table(path, n=120, seed=0):
    """y = 2a - b + 0.5 (+ small noise) with a text column; returns the frame."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    frame = pd.DataFrame({"a": a, "b": b, "kind": rng.choice(["x", "y"], n), "y": 2 * a - b + 0.5 + 0.01 * rng.normal(size=n)})
    frame.to_csv(path, index=False)
    return frame


def huber2(outputs, targets):
    """A module-level loss: importable as tests' module:function."""
    return F.huber_loss(outputs, targets, delta=2.0)


def test_loss_references():
    assert loss_reference(None) is None and loss_reference(F.mse_loss) == "mse" and loss_reference("l1") == "l1"
    assert resolve_loss(None) is F.cross_entropy and resolve_loss("smooth_l1") is F.smooth_l1_loss
    local = loss_reference(lambda o, t: ((o - t) ** 2).mean())
    assert local.startswith("local:") and resolve_loss(local)(torch.ones(2, 1), torch.zeros(2, 1)).item() == 1.0
    for bad, expected in (("hinge", "unknown loss 'hinge'"), ("local:gone", "workers=1"), (3, "must be a function")):
        with pytest.raises(DatasetError) as info:
            resolve_loss(loss_reference(bad) if not isinstance(bad, str) else bad)
        assert expected in str(info.value)


def test_regression_table_keeps_float_targets_and_the_random_split(tmp_path):
    frame = regression_table(tmp_path / "r.csv")
    ds = load_dataset(f"table:{tmp_path / 'r.csv'}?target=y&loss=mse", seed=1)
    assert ds.task == "regression" and ds.loss == "mse" and ds.num_classes == 1 and ds.class_names is None
    assert ds.train_y.dtype == torch.float32 and ds.train_y.shape == (96, 1) and ds.test_y.shape == (24, 1)
    # every target value is a row's y, and the two parts are the whole column
    values = np.sort(np.concatenate([ds.train_y.numpy().ravel(), ds.test_y.numpy().ravel()]))
    assert np.allclose(values, np.sort(frame["y"].to_numpy(np.float32)))
    with pytest.raises(DatasetError, match="fractional values.*--loss mse"):
        load_dataset(f"table:{tmp_path / 'r.csv'}?target=y")
    with pytest.raises(DatasetError, match="not numeric"):
        load_dataset(f"table:{tmp_path / 'r.csv'}?target=kind&loss=mse")


def test_arrays_with_a_regression_loss():
    x = torch.randn(40, 3)
    y = x @ torch.tensor([[1.0], [2.0], [-1.0]])
    ds = from_arrays((x, y), (x[:8], y[:8]), loss="mse")
    assert ds.task == "regression" and ds.num_classes == 1 and torch.equal(ds.test_y, y[:8])
    assert from_arrays((x, (y > 0).long().ravel()), None, loss="mse").train_y.dtype == torch.float32
    labels = from_arrays((x, (y > 0).long().ravel()), None, loss=loss_reference(huber2))
    assert labels.task == "classification" and labels.loss.endswith(":huber2")  # integer labels stay classes


def test_training_reports_the_regression_loss_by_hand(tmp_path):
    """train() on a regression table: no accuracy, and the reported test loss is the MSE of the model's
    predictions computed here from the checkpoint."""
    from nas.training import TrainSpec, load_checkpoint, train
    from search_spaces import get_space

    regression_table(tmp_path / "r.csv")
    name = data.resolve_dataset(f"table:{tmp_path / 'r.csv'}?target=y&loss=mse")[0]
    config = {"depth": 2, "width": 32, "activation": "relu", "init": "orthogonal", "norm": "none", "batch_size": 32,
              "lr": 0.01}
    space = get_space("mlp_looks_linear")
    config = space.validate(config)
    spec = TrainSpec(space="mlp_looks_linear", config=config, dataset=name, epochs=3, seed=0, threads=1,
                     checkpoint=str(tmp_path / "ck.pt"))
    history = train(spec)
    assert history["task"] == "regression" and history["test_acc"] == [None, None, None]
    assert history["test_loss"][-1] < history["test_loss"][0]
    ds = load_dataset(name)
    model = space.build(config, ds.num_classes, ds.input_shape, seed=0)
    model.load_state_dict(load_checkpoint(tmp_path / "ck.pt")["model"])
    model.eval()
    with torch.no_grad():
        by_hand = float(((model(ds.test_x) - ds.test_y) ** 2).mean())
    assert history["test_loss"][-1] == pytest.approx(by_hand, rel=1e-5)


@pytest.mark.parametrize("dataset,target,loss,memory,expected", [
    ("table:{d}/r.csv?target=y", "kind", None, None, "--target kind conflicts with target=y"),
    ("table:{d}/r.csv", "y", None, "1G", "--max-memory applies to folder:"),
    ("synthetic", None, "mse", None, "--loss mse needs your data"),
    ("synthetic", None, None, "1G", "--max-memory applies to folder:"),
    ("table:{d}/r.csv?target=y&loss=l1", None, "mse", None, "--loss mse conflicts with loss=l1"),
    ("table:{d}/r.csv", "y", "nope", None, "unknown loss 'nope'"),
    ("folder:{d}", None, None, "-1", "--max-memory must be a size such as 512M"),
])
def test_data_options_refuse_contradictions(tmp_path, dataset, target, loss, memory, expected):
    with pytest.raises(SearchError) as info:
        data_options(dataset.format(d=tmp_path), target, loss, memory)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_data_options_put_the_options_in_the_reference(tmp_path):
    ref = data_options(f"table:{tmp_path}/r.csv?target=y", "y", F.mse_loss)
    assert ref == f"table:{tmp_path}/r.csv?loss=mse&target=y"
    assert data_options(f"folder:{tmp_path}", None, None, "2G") == f"folder:{tmp_path}?max_memory={2 * 2**30}"
    assert data_options("synthetic", None, "cross_entropy") == "synthetic"


@pytest.mark.parametrize("bad", [
    ["--target", "b"], ["--loss", "hinge"], ["--max-memory", "lots"], ["--max-memory", "0"], ["--loss", "mse", "--dataset", "synthetic"],
])
def test_cli_bad_data_options_are_one_line_exit_2_and_leave_nothing(tmp_path, capsys, bad):
    regression_table(tmp_path / "r.csv")
    before = set(tmp_path.rglob("*"))
    argv = ["search", "--dataset", f"table:{tmp_path / 'r.csv'}?target=y", "--trials", "1", "--workers", "1",
            "--runs-dir", str(tmp_path / "runs")]
    code = main([*argv, *bad])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0]
    assert set(tmp_path.rglob("*")) == before


@pytest.mark.slow
def test_python_regression_search_ends_with_a_trained_model(tmp_path):
    """nas.search(data=arrays, loss_fn=mse, budget): the best trained model predicts with the reported loss."""
    import nas

    g = torch.Generator().manual_seed(0)
    x = torch.randn(160, 4, generator=g)
    y = x @ torch.tensor([[1.5], [-2.0], [0.5], [1.0]])
    result = nas.search(space="mlp_looks_linear", data=((x[:128], y[:128]), (x[128:], y[128:])), loss_fn=F.mse_loss,
                        budget="30s", smoke=True, workers=1, runs_dir=str(tmp_path / "runs"), study="reg")
    assert result.test_acc is None and result.test_loss is not None and np.isfinite(result.test_loss)
    model, info = nas.load_model(result.folder.best_model, with_info=True)
    ds = load_dataset(result.search_config.dataset)
    with torch.no_grad():
        by_hand = float(((model(ds.test_x) - ds.test_y) ** 2).mean())
    assert by_hand == pytest.approx(result.test_loss, rel=1e-4)
    assert json.loads(result.folder.best_model_json.read_text())["task"] == "regression"


@pytest.mark.slow
def test_a_streamed_image_folder_is_searched_end_to_end(tmp_path, capsys):
    """A folder larger than the memory limit set here (60 PNGs of 3x16x16: 184 KiB as tensors > 64K) is
    searched with the DataLoader path, ending with a trained model."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(("red", "green", "blue")):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(20):
            a = rng.integers(0, 80, (16, 16, 3)).astype(np.uint8)
            a[4:12, 4:12, k] = 250
            Image.fromarray(a).save(tmp_path / "imgs" / name / f"{i}.png")
    code = main(["search", "--dataset", f"folder:{tmp_path / 'imgs'}", "--max-memory", "64K", "--budget", "30s",
                 "--smoke", "--workers", "1", "--probe-size", "32", "--no-progress", "--runs-dir", str(tmp_path / "runs"), "--study", "s"])
    out = capsys.readouterr().out
    assert code == 0 and "best trained model" in out
    import optuna

    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'runs' / 's' / 'study.db'}")
    info = study.user_attrs["dataset_info"]
    assert info["streamed"] is True and info["estimated_bytes"] == 60 * 3 * 16 * 16 * 4 > 64 * 1024
