"""The contract every registered metric keeps, checked over ``registry.names()`` (as timm tests every model).

* the caller's model is left as found: state_dict bit-identical, each module's train/eval flag, every
  ``.grad`` (set or None) and ``requires_grad`` flag unchanged;
* the same call twice gives the same float (seeded, no hidden state);
* the direction is declared, the metric lives in ``objectives/<family>/<key>.py`` with its test in the
  mirrored ``tests/objectives/<family>/test_<key>.py``;
* a bad batch raises ``ValueError``: empty (every metric), targets of another length (metrics that need
  labels), NaN inputs (metrics that read the data).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from objectives import registry
from objectives.registry import DIRECTIONS
from search_spaces import get_space

ROOT = Path(__file__).resolve().parents[2]
NAMES = registry.names()
FAMILIES = ("thesis", "zero_cost", "noise")


def _model_and_batch():
    space = get_space("resnet_cifar")
    config = space.validate({**space.default_config(), "blocks": 1, "width": 8, "norm": "bn"})
    model = space.build(config, 10, (3, 8, 8), seed=0)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)
    return model, x, y


def _snapshot(model):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [m.training for m in model.modules()],
        [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        [p.requires_grad for p in model.parameters()],
    )


def _same(a, b):
    state_a, flags_a, grads_a, req_a = a
    state_b, flags_b, grads_b, req_b = b
    assert state_a.keys() == state_b.keys()
    for k in state_a:
        assert torch.equal(state_a[k], state_b[k]), f"state_dict entry {k} changed"
    assert flags_a == flags_b, "train/eval flags changed"
    assert req_a == req_b, "requires_grad flags changed"
    for i, (ga, gb) in enumerate(zip(grads_a, grads_b)):
        assert (ga is None) == (gb is None), f".grad of parameter {i} appeared or vanished"
        if ga is not None:
            assert torch.equal(ga, gb), f".grad of parameter {i} changed"


@pytest.mark.parametrize("name", NAMES)
def test_metric_leaves_the_model_as_found_and_is_deterministic(name):
    model, x, y = _model_and_batch()
    model.train()
    model.stages[1].eval()  # mixed flags: each must come back as it was
    params = list(model.parameters())
    g = torch.Generator().manual_seed(1)
    for p in params[::2]:  # some .grad set, the others None
        p.grad = torch.randn(p.shape, generator=g)
    before = _snapshot(model)
    fn = registry.get(name).fn
    first = fn(model, x, y)
    _same(before, _snapshot(model))
    second = fn(model, x, y)
    assert isinstance(first, float)
    assert first == second or (math.isnan(first) and math.isnan(second))


@pytest.mark.parametrize("name", NAMES)
def test_metric_is_declared_where_its_name_says(name):
    e = registry.get(name)
    assert e.direction in DIRECTIONS
    assert e.family in FAMILIES
    assert e.summary and e.citation
    assert e.file == f"objectives/{e.family}/{name}.py" and (ROOT / e.file).is_file()
    assert e.test == f"tests/objectives/{e.family}/test_{name}.py" and (ROOT / e.test).is_file()


def _bad_batches(x, y):
    nan = x.clone()
    nan[0, 0, 0, 0] = float("nan")
    return {"empty": (x[:0], y[:0]), "length mismatch": (x, y[:5]), "NaN input": (nan, y)}


@pytest.mark.parametrize("case", ["empty", "length mismatch", "NaN input"])
@pytest.mark.parametrize("name", NAMES)
def test_bad_batch_raises_value_error(name, case):
    needs = registry.get(name).needs
    if case == "length mismatch" and "labels" not in needs or case == "NaN input" and "data" not in needs:
        pytest.skip(f"{name} does not read {'labels' if case == 'length mismatch' else 'input values'}")
    model, x, y = _model_and_batch()
    bx, by = _bad_batches(x, y)[case]
    with pytest.raises(ValueError):
        registry.get(name).fn(model, bx, by)
