"""User data by reference (nas/data: reference, folder, table, user_function, arrays, register_dataset).

Every test writes its own small data under tmp_path (PNG files with PIL, CSV with pandas) and loads it
through ``nas.data.load_dataset`` by name, as the search's workers do.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import nas.data as data
from nas.data import (
    Dataset,
    DatasetError,
    dataset_label,
    encode_table,
    from_arrays,
    from_torch,
    load_dataset,
    prepare_images,
    register_dataset,
    resolve_dataset,
)
from nas.data.arrays import digest

pytestmark = pytest.mark.usefixtures("fresh_cache")


def write_images(folder, classes=("cat", "dog", "emu"), n=10, size=(6, 8), mode="RGB", seed=0):
    """``n`` PNGs per class under folder/<class>/ (size is H x W); returns {class: [uint8 arrays]}."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, name in enumerate(classes):
        (folder / name).mkdir(parents=True)
        out[name] = []
        for i in range(n):
            shape = size if mode == "L" else (*size, 3)
            a = rng.integers(0, 200, shape).astype(np.uint8) + np.uint8(20 * k)
            Image.fromarray(a, mode=mode).save(folder / name / f"{i:03d}.png")
            out[name].append(a)
    return out


def error_of(call) -> str:
    with pytest.raises(DatasetError) as info:
        call()
    message = str(info.value)
    assert message and "\n" not in message
    return message


# ------------------------------------------------------------------------------------------------ folders
def test_folder_train_test_layout_matches_numpy_reference(tmp_path):
    train = write_images(tmp_path / "img" / "train", n=6, seed=1)
    test = write_images(tmp_path / "img" / "test", n=3, seed=2)
    ds = load_dataset(f"folder:{tmp_path / 'img'}")
    assert ds.input_shape == (3, 6, 8) and ds.num_classes == 3 and ds.class_names == ("cat", "dog", "emu")
    assert ds.train_x.shape == (18, 3, 6, 8) and ds.test_x.shape == (9, 3, 6, 8) and ds.augment == "none"
    raw = np.stack([a for c in ("cat", "dog", "emu") for a in train[c]]).astype(np.float64) / 255  # sorted order
    mean, std = raw.mean(axis=(0, 1, 2)), raw.std(axis=(0, 1, 2))
    np.testing.assert_allclose(ds.mean, mean, rtol=1e-5)
    np.testing.assert_allclose(ds.std, std, rtol=1e-5)
    np.testing.assert_allclose(ds.train_x.numpy(), ((raw - mean) / std).transpose(0, 3, 1, 2), atol=1e-5)
    assert torch.equal(ds.train_y, torch.tensor([0] * 6 + [1] * 6 + [2] * 6))
    np.testing.assert_allclose(ds.train_x.mean(dim=(0, 2, 3)).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(ds.train_x.std(dim=(0, 2, 3), correction=0).numpy(), 1, atol=1e-5)
    # a saved model prepares a new image exactly as the test split was prepared
    paths = [tmp_path / "img" / "test" / c / f"{i:03d}.png" for c in ("cat", "dog", "emu") for i in range(3)]
    assert torch.equal(prepare_images(paths, json.loads(json.dumps(ds.preprocess))), ds.test_x)
    assert len(test["cat"]) == 3


def test_folder_held_out_split_is_stratified_and_seeded(tmp_path):
    images = write_images(tmp_path / "img", n=10)
    ref = f"folder:{tmp_path / 'img'}"
    ds = load_dataset(ref, seed=0)
    assert len(ds.train_y) == 24 and len(ds.test_y) == 6
    assert torch.bincount(ds.test_y).tolist() == [2, 2, 2]
    again = load_dataset(ref + "?test_fraction=0.2", seed=0)  # another reference: loaded afresh
    assert again is not ds and torch.equal(again.train_x, ds.train_x) and torch.equal(again.test_y, ds.test_y)
    other = load_dataset(ref, seed=1)
    assert not torch.equal(other.train_x, ds.train_x)
    # every image is in exactly one split
    back = torch.cat([ds.train_x, ds.test_x]) * torch.tensor(ds.std).view(1, 3, 1, 1) + torch.tensor(ds.mean).view(1, 3, 1, 1)
    pixels = np.rint(back.numpy() * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    got = sorted(a.tobytes() for a in pixels)
    assert got == sorted(a.tobytes() for c in images.values() for a in c)
    thirty = load_dataset(ref + "?test_fraction=0.3", seed=0)
    assert len(thirty.test_y) == 9


def test_folder_options_grayscale_size_and_mixed_sizes(tmp_path):
    write_images(tmp_path / "gray", mode="L", n=4)
    ds = load_dataset(f"folder:{tmp_path / 'gray'}")
    assert ds.input_shape == (1, 6, 8) and len(ds.mean) == 1
    assert load_dataset(f"folder:{tmp_path / 'gray'}?grayscale=0").input_shape == (3, 6, 8)
    assert load_dataset(f"folder:{tmp_path / 'gray'}?size=4x5").input_shape == (1, 4, 5)
    assert load_dataset(f"folder:{tmp_path / 'gray'}?size=5&grayscale=0").input_shape == (3, 5, 5)
    write_images(tmp_path / "mixed", n=4)
    Image.new("RGB", (9, 9)).save(tmp_path / "mixed" / "cat" / "big.png")
    assert load_dataset(f"folder:{tmp_path / 'mixed'}").input_shape == (3, 32, 32)
    assert load_dataset(f"folder:{tmp_path / 'mixed'}?augment=crop_flip").augment == "crop_flip"


def test_folder_errors(tmp_path):
    assert "does not exist" in error_of(lambda: load_dataset(f"folder:{tmp_path / 'nope'}"))
    assert "does not exist" in error_of(lambda: resolve_dataset(f"folder:{tmp_path / 'nope'}"))
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "flat" / "a.png")
    assert "no class subfolders (1 images" in error_of(lambda: load_dataset(f"folder:{tmp_path / 'flat'}"))
    write_images(tmp_path / "one", classes=("only",), n=3)
    assert "at least 2 classes" in error_of(lambda: load_dataset(f"folder:{tmp_path / 'one'}"))
    write_images(tmp_path / "empty", n=3)
    (tmp_path / "empty" / "ghost").mkdir()
    assert "ghost has no images" in error_of(lambda: load_dataset(f"folder:{tmp_path / 'empty'}"))
    write_images(tmp_path / "bad", n=3)
    (tmp_path / "bad" / "cat" / "broken.png").write_bytes(b"not a png")
    assert "broken.png" in error_of(lambda: load_dataset(f"folder:{tmp_path / 'bad'}"))
    assert "valid options: size" in error_of(lambda: load_dataset(f"folder:{tmp_path / 'bad'}?colour=1"))
    assert "size must be" in error_of(lambda: load_dataset(f"folder:{tmp_path / 'bad'}?size=big"))
    assert "test_fraction" in error_of(lambda: load_dataset(f"folder:{tmp_path / 'bad'}?test_fraction=1.5"))


# ------------------------------------------------------------------------------------------------- tables
def make_frame(n=60, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.normal(40, 10, n).round(1),
        "city": rng.choice(["oslo", "rome", "lima"], n).astype(object),
        "income": rng.lognormal(10, 1, n),
        "label": rng.choice(["high", "low", "mid"], n).astype(object),
    })
    frame.loc[[1, 5], "age"] = np.nan
    frame.loc[[2], "city"] = None
    frame.loc[[3, 7, 9], "label"] = None
    return frame


def test_table_with_test_table_matches_numpy_reference(tmp_path):
    train, test = make_frame(60, 0), make_frame(20, 1)
    test.loc[0, "city"] = "paris"  # unseen in train: all-zero one-hot
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    ds = load_dataset(f"table:{tmp_path / 'train.csv'}?target=label&test={tmp_path / 'test.csv'}")
    kept = train[train.label.notna()].reset_index(drop=True)
    assert ds.input_shape == (1, 1, 5) and ds.augment == "none" and ds.num_classes == 3
    assert ds.class_names == ("high", "low", "mid") and len(ds.train_y) == 57 and len(ds.test_y) == 17
    assert "dropped 6 row(s) with a missing target" in ds.source
    assert ds.train_y.tolist() == [["high", "low", "mid"].index(v) for v in kept.label]
    assert ds.preprocess["features"] == ["age", "city=lima", "city=oslo", "city=rome", "income"]
    age = kept.age.to_numpy()
    age = np.where(np.isnan(age), np.nanmedian(age), age)
    np.testing.assert_allclose(ds.train_x[:, 0, 0, 0].numpy(), (age - age.mean()) / age.std(), atol=1e-5)
    for f in (0, 4):  # numeric features: mean 0, std 1 on the train split
        assert abs(float(ds.train_x[:, 0, 0, f].mean())) < 1e-5
        assert abs(float(ds.train_x[:, 0, 0, f].std(correction=0)) - 1) < 1e-5
    onehot = ds.train_x[:, 0, 0, 1:4]
    assert set(onehot.flatten().tolist()) <= {0.0, 1.0}
    np.testing.assert_array_equal(onehot.sum(1).numpy(), kept.city.notna().to_numpy().astype(np.float32))
    assert ds.test_x[0, 0, 0, 1:4].tolist() == [0.0, 0.0, 0.0]
    assert ds.mean[1:4] == (0.0, 0.0, 0.0) and ds.std[1:4] == (1.0, 1.0, 1.0)
    assert torch.equal(encode_table(test[test.label.notna()], ds.preprocess), ds.test_x)


def test_table_held_out_split_and_options(tmp_path):
    make_frame(100).to_csv(tmp_path / "t.csv", index=False)
    ref = f"table:{tmp_path / 't.csv'}?target=label"
    ds = load_dataset(ref, seed=3)
    assert len(ds.train_y) + len(ds.test_y) == 97 and len(ds.test_y) == round(0.2 * 97)
    counts = torch.bincount(torch.cat([ds.train_y, ds.test_y]), minlength=3)
    assert (torch.bincount(ds.test_y, minlength=3) - counts * len(ds.test_y) / 97).abs().max() < 1
    assert torch.equal(load_dataset(ref + "&sep=,", seed=3).train_x, ds.train_x)  # same split, same seed
    assert not torch.equal(load_dataset(ref, seed=4).train_y, ds.train_y)
    assert load_dataset(ref + "&drop=city").input_shape == (1, 1, 2)
    few = load_dataset(ref + "&max_categories=2")
    assert few.input_shape == (1, 1, 2) and "left out: city (3 categories > max_categories=2)" in few.source
    frame = make_frame(30)
    frame["label"] = frame.label.map({"high": 2.0, "low": 0.0, "mid": 1.0})
    frame.to_csv(tmp_path / "num.csv", index=False)
    assert load_dataset(f"table:{tmp_path / 'num.csv'}?target=label").class_names == ("0", "1", "2")


def test_table_errors(tmp_path):
    make_frame(30).to_csv(tmp_path / "t.csv", index=False)
    message = error_of(lambda: load_dataset(f"table:{tmp_path / 't.csv'}?target=y"))
    assert "no column 'y'" in message and "age, city, income, label" in message
    assert "target=COLUMN" in error_of(lambda: load_dataset(f"table:{tmp_path / 't.csv'}"))
    assert "does not exist" in error_of(lambda: load_dataset(f"table:{tmp_path / 'x.csv'}?target=y"))
    assert "unknown column(s) zip" in error_of(lambda: load_dataset(f"table:{tmp_path / 't.csv'}?target=label&drop=zip"))
    frame = make_frame(30)
    frame["label"] = "same"
    frame.to_csv(tmp_path / "one.csv", index=False)
    assert "at least 2 classes" in error_of(lambda: load_dataset(f"table:{tmp_path / 'one.csv'}?target=label"))
    assert "fractional values" in error_of(lambda: load_dataset(f"table:{tmp_path / 'one.csv'}?target=income"))
    frame = make_frame(30)
    frame.loc[4, "income"] = np.inf
    frame.to_csv(tmp_path / "inf.csv", index=False)
    assert "infinite" in error_of(lambda: load_dataset(f"table:{tmp_path / 'inf.csv'}?target=label"))
    for row in range(30):  # wherever the split puts the row, and in a separate test table
        frame = make_frame(30)
        frame.loc[row, "income"] = -np.inf
        frame.to_csv(tmp_path / "inf.csv", index=False)
        assert "column 'income' of inf.csv has infinite values" in error_of(
            lambda: load_dataset(f"table:{tmp_path / 'inf.csv'}?target=label"))
    make_frame(30).to_csv(tmp_path / "fine.csv", index=False)
    message = error_of(lambda: load_dataset(f"table:{tmp_path / 'fine.csv'}?target=label&test={tmp_path / 'inf.csv'}"))
    assert "column 'income' of inf.csv has infinite values" in message
    frame = make_frame(30).assign(income=lambda f: f["income"].round())
    frame.loc[3, "income"] = np.inf
    frame.to_csv(tmp_path / "inf_target.csv", index=False)
    assert "target 'income' has infinite values" in error_of(
        lambda: load_dataset(f"table:{tmp_path / 'inf_target.csv'}?target=income"))
    (tmp_path / "t.xlsx").write_bytes(b"")
    assert ".csv" in error_of(lambda: load_dataset(f"table:{tmp_path / 't.xlsx'}?target=label"))


def test_parquet(tmp_path):
    frame = make_frame(40)
    if importlib.util.find_spec("pyarrow") is None:
        (tmp_path / "t.parquet").write_bytes(b"PAR1")
        message = error_of(lambda: load_dataset(f"table:{tmp_path / 't.parquet'}?target=label"))
        assert "pip install pyarrow" in message
        return
    frame.to_parquet(tmp_path / "t.parquet")
    frame.to_csv(tmp_path / "t.csv", index=False)
    a = load_dataset(f"table:{tmp_path / 't.parquet'}?target=label")
    b = load_dataset(f"table:{tmp_path / 't.csv'}?target=label")
    assert torch.allclose(a.train_x, b.train_x, atol=1e-5) and torch.equal(a.train_y, b.train_y)


# ------------------------------------------------------------------------------------- module:function
USER_MODULE = '''
import numpy as np
import torch
from torch.utils.data import TensorDataset
import nas.data


def arrays(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(50, 2, 4, 4)).astype(np.float32)
    y = np.arange(50) % 3
    return (x[:40], y[:40]), (x[40:], y[40:])


def torch_sets():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 7, generator=g), torch.arange(30) % 2
    return TensorDataset(x[:20], y[:20]), TensorDataset(x[20:], y[20:])


def a_dataset():
    return nas.data.from_arrays((np.eye(6, dtype=np.float32), [0, 1, 0, 1, 0, 1]), name="eye", test_fraction=0.5)


def one_pair():
    return np.zeros((4, 3)), np.zeros(4)


def a_dict():
    return {"x": 1}


def fractional():
    return (np.zeros((4, 3)), [0.5, 1, 0, 1]), (np.zeros((2, 3)), [0, 1])


def negative():
    return (np.zeros((4, 3)), [0, 1, -1, 1]), (np.zeros((2, 3)), [0, 1])


def boom():
    raise RuntimeError("disk on fire")


NOT_A_FUNCTION = 3
'''


@pytest.fixture
def user_module(tmp_path):
    path = tmp_path / "my_data.py"
    path.write_text(textwrap.dedent(USER_MODULE))
    return path


def test_function_references(user_module, tmp_path, monkeypatch):
    ds = load_dataset(f"{user_module}:arrays", seed=0)
    assert ds.input_shape == (2, 4, 4) and ds.num_classes == 3 and len(ds.train_y) == 40 and len(ds.test_y) == 10
    assert abs(float(ds.train_x[:, 1].mean())) < 1e-5 and ds.augment == "none"
    assert not torch.equal(load_dataset(f"{user_module}:arrays", seed=1).train_x, ds.train_x)  # seed= is passed
    feats = load_dataset(f"{user_module}:torch_sets")
    assert feats.input_shape == (1, 1, 7) and feats.num_classes == 2 and len(feats.test_y) == 10
    assert load_dataset(f"{user_module}:a_dataset").name == "eye"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    by_module = load_dataset("my_data:arrays", seed=0)
    assert torch.equal(by_module.train_x, ds.train_x)
    assert resolve_dataset("my_data.py:arrays") == (f"{user_module}:arrays", None)  # a file path becomes absolute
    assert resolve_dataset("my_data:arrays") == ("my_data:arrays", None)


@pytest.mark.parametrize("attr, expected", [
    ("one_pair", "returned one (x, y) pair"),
    ("a_dict", "returned a dict"),
    ("fractional", "labels are not integers"),
    ("negative", "label -1 is out of range"),
    ("boom", "raised RuntimeError: disk on fire"),
    ("NOT_A_FUNCTION", "not a function"),
    ("missing", "has no attribute 'missing'"),
])
def test_function_errors(user_module, attr, expected):
    assert expected in error_of(lambda: load_dataset(f"{user_module}:{attr}"))


def test_function_import_errors(tmp_path):
    assert "cannot import 'no_such_module_xyz'" in error_of(lambda: load_dataset("no_such_module_xyz:f"))
    assert "no such file" in error_of(lambda: load_dataset(f"{tmp_path / 'nope.py'}:f"))


# ------------------------------------------------------------------------------ arrays, torch, register
def test_from_arrays_shapes_labels_and_copies():
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    ds = from_arrays((x, np.arange(10) % 2), (x[:4], np.array([0.0, 1.0, 1.0, 0.0])), class_names=["a", "b"])
    assert ds.input_shape == (1, 1, 4) and ds.num_classes == 2 and ds.test_y.dtype == torch.int64
    assert x[0, 0] == 0 and x[9, 3] == 39  # the caller's array is not normalized in place
    np.testing.assert_allclose(ds.train_x.reshape(10, 4).std(0, correction=0).numpy(), 1, atol=1e-5)
    imgs = from_arrays((torch.rand(15, 5, 5), torch.arange(15) % 3))
    assert imgs.input_shape == (1, 5, 5) and len(imgs.test_y) == 3 and torch.bincount(imgs.test_y).tolist() == [1, 1, 1]
    tds = from_torch(torch.utils.data.TensorDataset(torch.rand(8, 3, 2, 2), torch.arange(8) % 2))
    assert tds.name == "TensorDataset" and tds.input_shape == (3, 2, 2)
    assert "2 class names for 3 classes" in error_of(lambda: from_arrays((x[:9], np.arange(9) % 3), class_names=["a", "b"]))
    assert "at least 2 classes" in error_of(lambda: from_arrays((x, np.zeros(10))))
    assert "NaN or inf" in error_of(lambda: from_arrays((np.full((10, 4), np.nan), np.arange(10) % 2)))
    assert "feature vectors need augment='none'" in error_of(lambda: from_arrays((x, np.arange(10) % 2), augment="crop"))
    assert "out of range" in error_of(lambda: from_arrays((x, np.arange(10) % 3), num_classes=2))
    assert "not numbers" in error_of(lambda: from_arrays((x, np.array(["a", "b"] * 5))))


def test_register_memory_and_saved_round_trip_in_a_fresh_process(tmp_path):
    ds = from_arrays((torch.randn(20, 3, 4, 4), torch.arange(20) % 4), name="mine", class_names="abcd")
    sha = digest(ds)
    assert register_dataset(ds) == f"memory:{sha}"
    assert load_dataset(f"memory:{sha}") is ds and resolve_dataset(f"memory:{sha}") == (f"memory:{sha}", None)
    ref = register_dataset(ds, tmp_path / "study" / "data")
    assert ref == f"saved:{tmp_path / 'study' / 'data' / sha}.pt" and load_dataset(ref) is ds
    assert register_dataset(ds, tmp_path / "study" / "data") == ref  # the file is reused
    code = ("import sys, json, nas.data as d; from nas.data.arrays import digest; ds = d.load_dataset(sys.argv[1]); "
            "print(json.dumps([digest(ds), ds.name, list(ds.class_names), list(ds.mean)]))")
    out = subprocess.run([sys.executable, "-c", code, ref], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [sha, "mine", list("abcd"), list(ds.mean)]
    data._CACHE.clear()  # a worker that never saw the data
    assert "not registered in this process" in error_of(lambda: load_dataset(f"memory:{sha}"))
    assert "not registered in this process" in error_of(lambda: resolve_dataset(f"memory:{sha}"))
    assert "does not exist" in error_of(lambda: resolve_dataset(f"saved:{tmp_path / 'gone.pt'}"))
    assert "no such file" in error_of(lambda: load_dataset(f"saved:{tmp_path / 'gone.pt'}"))
    assert digest(load_dataset(ref)) == sha


# ----------------------------------------------------------------------------------- references, names
def test_references_are_canonical_and_labelled(tmp_path, monkeypatch):
    write_images(tmp_path / "flowers", n=3)
    monkeypatch.chdir(tmp_path)
    name, warning = resolve_dataset("folder:flowers?test_fraction=0.5&size=4")
    assert warning is None and name == f"folder:{tmp_path / 'flowers'}?size=4&test_fraction=0.5"
    assert load_dataset("folder:flowers?size=4&test_fraction=0.5") is load_dataset(name)
    assert dataset_label(name) == "flowers" and dataset_label("cifar10") == "cifar10"
    assert dataset_label(f"table:{tmp_path}/titanic.csv?target=Survived") == "titanic"
    assert dataset_label("my.pkg:load_data") == "load_data" and dataset_label("memory:0123456789ab") == "data-01234567"
    assert "module:function" in error_of(lambda: load_dataset("imagenet"))
    assert "not a data reference" in error_of(lambda: load_dataset(":f"))
    assert "unknown option" in error_of(lambda: load_dataset("my.pkg:f?x=1"))
    assert isinstance(load_dataset(name), Dataset)
