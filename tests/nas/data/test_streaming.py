"""Streaming (nas/data/stream.py, torch_data.py): data over the memory limit read through a DataLoader.

The in-memory path is the reference: the same folder loaded with a tiny ``max_memory`` must give the same
examples, batches, scores and training as the whole-tensor path; the normalization statistics are checked
against numpy on the decoded pixels.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nas.data as data
from nas.data import Dataset, DatasetError, StreamedDataset, from_torch, load_dataset, parse_memory, register_dataset
from nas.data.stream import channel_stats

pytestmark = pytest.mark.usefixtures("fresh_cache")


def write_images(folder, classes=("cat", "dog", "emu"), n=12, size=(8, 8)):
    """``n`` RGB PNGs per class under folder/<class>/, class k brighter by 20 k; returns {class: [arrays]}."""
    from PIL import Image

    rng = np.random.default_rng(0)
    out = {}
    for k, name in enumerate(classes):
        (folder / name).mkdir(parents=True)
        out[name] = [rng.integers(0, 200, (*size, 3)).astype(np.uint8) + np.uint8(20 * k) for _ in range(n)]
        for i, a in enumerate(out[name]):
            Image.fromarray(a, mode="RGB").save(folder / name / f"{i:03d}.png")
    return out


def both(tmp_path, **options):
    """The same folder in memory and streamed (max_memory=1 byte: anything streams)."""
    pixels = write_images(tmp_path / "imgs", n=12, size=(8, 8))
    ref = f"folder:{tmp_path / 'imgs'}"
    extra = "".join(f"&{k}={v}" for k, v in options.items())
    memory = load_dataset(f"{ref}?max_memory=1G{extra}", seed=3)
    streamed = load_dataset(f"{ref}?max_memory=1{extra}", seed=3)
    return pixels, memory, streamed


def test_parse_memory_units_and_errors():
    assert parse_memory("512M") == 512 * 2**20 and parse_memory("4G") == 4 * 2**30 and parse_memory("1.5GiB") == 3 * 2**29
    assert parse_memory(1000) == 1000 and parse_memory("2e3") == 2000 and parse_memory("64kb") == 65536
    for bad in ("0", "-1G", "lots", "", True, float("inf")):
        with pytest.raises(DatasetError):
            parse_memory(bad)


def test_streamed_folder_gives_the_in_memory_examples_and_batches(tmp_path):
    pixels, memory, streamed = both(tmp_path)
    assert isinstance(memory, Dataset) and isinstance(streamed, StreamedDataset) and streamed.streamed
    assert (streamed.train_size, streamed.test_size) == (memory.train_size, memory.test_size) == (29, 7)
    assert streamed.input_shape == memory.input_shape and streamed.class_names == memory.class_names
    # normalization statistics: numpy over every decoded train pixel (a sample of all 29 = the whole split)
    raw = np.stack([a for name in memory.class_names for a in pixels[name]]).astype(np.float64) / 255.0
    x_train = memory.train_x * torch.tensor(memory.std).view(1, 3, 1, 1) + torch.tensor(memory.mean).view(1, 3, 1, 1)
    assert np.allclose(np.asarray(streamed.mean), x_train.double().mean(dim=(0, 2, 3)).numpy(), atol=1e-6)
    assert np.allclose(np.asarray(streamed.std), x_train.double().std(dim=(0, 2, 3), correction=0).numpy(), atol=1e-6)
    assert raw.shape[0] == 36  # every image of the folder was written (train + test)
    for which in ("train", "test"):
        idx = torch.tensor([4, 0, 6, 2])
        xm, ym = memory.take(which, idx)
        xs, ys = streamed.take(which, idx)
        assert torch.equal(ym, ys) and torch.allclose(xm, xs, atol=1e-5)
    index_batches = [torch.randperm(29, generator=torch.Generator().manual_seed(s))[:8] for s in range(3)]
    pairs = list(zip(memory.batches("train", index_batches), streamed.batches("train", index_batches)))
    assert len(pairs) == 3
    for (xm, ym), (xs, ys) in pairs:
        assert torch.equal(ym, ys) and torch.allclose(xm, xs, atol=1e-5)
    assert streamed.describe()["streamed"] is True and "streamed" not in memory.describe()


def test_channel_stats_on_a_sample_matches_numpy():
    rng = np.random.default_rng(0)
    arrays = rng.normal(loc=[[[1.0]], [[-2.0]]], scale=[[[0.5]], [[3.0]]], size=(50, 2, 3, 3)).astype(np.float32)
    base = [(torch.from_numpy(a), 0) for a in arrays]
    mean, std = channel_stats(base, 0, sample=1000)
    assert np.allclose(mean, arrays.astype(np.float64).mean(axis=(0, 2, 3)), atol=1e-6)
    assert np.allclose(std, arrays.astype(np.float64).std(axis=(0, 2, 3)), atol=1e-6)
    sampled, _ = channel_stats(base, 0, sample=20, seed=1)  # 20 of 50: close, not equal
    assert np.allclose(sampled, mean, atol=0.3) and not np.allclose(sampled, mean, atol=1e-9)


def test_scoring_and_training_agree_on_both_paths(tmp_path):
    from nas.evaluate import TrialSpec, evaluate
    from nas.training import TrainSpec, train

    _, memory, streamed = both(tmp_path)
    config = {"blocks": 1, "width": 8, "batch_size": 32, "lr": 0.05}
    results = []
    for ds in (memory, streamed):
        spec = TrialSpec(space="resnet_cifar", config=config, dataset=ds.name, bounds={"blocks": [1, 1], "width": [8, 8]},
                         metrics=["grad_norm"], early_steps=4, probe_size=8, seed=1, data_seed=3, threads=1,
                         time_steps=0)
        results.append(evaluate(spec))
    a, b = results
    assert a["loss_curve"] == pytest.approx(b["loss_curve"], rel=1e-4)
    assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    assert a["grad_norm@early"] == pytest.approx(b["grad_norm@early"], rel=1e-4)
    histories = [train(TrainSpec(space="resnet_cifar", config=config, dataset=ds.name, epochs=2, seed=1, data_seed=3,
                                 bounds={"blocks": [1, 1], "width": [8, 8]}, threads=1)) for ds in (memory, streamed)]
    assert histories[0]["test_acc"] == histories[1]["test_acc"]
    assert histories[0]["train_loss"] == pytest.approx(histories[1]["train_loss"], rel=1e-4)
    assert histories[0]["test_loss"] == pytest.approx(histories[1]["test_loss"], rel=1e-4)


class Squares(torch.utils.data.Dataset):
    """``n`` 2 x 4 x 4 images made on the fly; label = which quadrant is bright (4 classes)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        g = torch.Generator().manual_seed(self.seed * 10_000 + i)
        x = torch.rand(2, 4, 4, generator=g)
        label = i % 4
        x[:, (label // 2) * 2:(label // 2) * 2 + 2, (label % 2) * 2:(label % 2) * 2 + 2] += 2.0
        return x, label


def test_a_large_torch_dataset_streams_and_round_trips_through_its_pickled_file(tmp_path):
    small = from_torch(Squares(40, 0), Squares(12, 1))
    big = from_torch(Squares(40, 0), Squares(12, 1), max_memory=100)  # 52 x 128 B > 100 B
    assert isinstance(small, Dataset) and isinstance(big, StreamedDataset) and big.num_classes == 4
    xs, ys = big.take("train", list(range(40)))
    assert torch.equal(ys, small.train_y) and torch.allclose(xs, small.train_x, atol=1e-5)
    name = register_dataset(big, tmp_path)
    assert name.startswith("saved:") and name.endswith(".stream.pt")
    data._CACHE.clear()
    again = load_dataset(name)
    assert isinstance(again, StreamedDataset) and torch.allclose(again.take("test", [3])[0], big.take("test", [3])[0])


def test_bad_max_memory_and_loss_options_are_one_line_errors(tmp_path):
    write_images(tmp_path / "imgs", n=3, size=(4, 4))
    for option, expected in (("max_memory=lots", "max_memory must be a size"), ("loss=hinge", "unknown loss 'hinge'")):
        with pytest.raises(DatasetError) as info:
            load_dataset(f"folder:{tmp_path / 'imgs'}?{option}")
        assert expected in str(info.value) and "\n" not in str(info.value)
