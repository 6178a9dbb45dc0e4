"""rank_weight (thesis Def. 3.7 with h_W) against a per-example loop + SVD and identical gradients."""

import pytest
import torch

from objectives import relative_gradient_rank, score
from objectives.core import gaussian_stable_rank


def test_rank_weight_of_identical_gradients_is_one_over_reference(constant_net):
    x, y = torch.randn(16, 3), torch.zeros(16, dtype=torch.long)
    r = relative_gradient_rank(constant_net(), x, y, variant="weight")
    assert r == pytest.approx(1 / gaussian_stable_rank(16, 4), rel=1e-6)


def test_rank_weight_matches_per_example_svd(small_net, data, per_example_loop):
    model = small_net()
    x, y = data(n=8)
    s = torch.linalg.svdvals(per_example_loop(model, x, y))
    ra = float((s**2).sum() / s[0] ** 2)
    p = sum(q.numel() for q in model.parameters())
    expected = ra / gaussian_stable_rank(8, p)
    assert relative_gradient_rank(model, x, y, variant="weight") == pytest.approx(expected, rel=1e-4)
    assert score(model, x, y, metrics=["rank_weight"])["rank_weight"] == pytest.approx(expected, rel=1e-4)
