"""Random parameter masks (thesis Sec. 1.6): counts per layer, distinct indices, reproducibility."""

import math

import torch

from objectives.core import make_mask, random_subset


def test_mask_counts_and_reproducibility():
    g = torch.Generator().manual_seed(2)
    shapes = {"conv.weight": (8, 3, 3, 3), "conv.bias": (8,), "bn.weight": (8,), "fc.weight": (5, 8), "one": (1,)}
    params = {n: torch.randn(s, generator=g) for n, s in shapes.items()}
    for frac in (0.01, 0.1, 0.5):
        mask = make_mask(params, frac, seed=3)
        for name, p in params.items():
            assert mask[name].numel() == max(1, math.ceil(frac * p.numel()))
            assert mask[name].unique().numel() == mask[name].numel()
            assert int(mask[name].max()) < p.numel()
        again = make_mask(params, frac, seed=3)
        other = make_mask(params, frac, seed=4)
        assert all(torch.equal(mask[n], again[n]) for n in params)
        assert any(not torch.equal(mask[n], other[n]) for n in params if mask[n].numel() < params[n].numel())


def test_random_subset_is_sorted_distinct_and_seeded():
    a = random_subset(100, 10, torch.Generator().manual_seed(0))
    b = random_subset(100, 10, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.numel() == 10 and a.unique().numel() == 10
    assert torch.equal(a, a.sort().values) and int(a.max()) < 100
