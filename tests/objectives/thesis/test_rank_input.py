"""rank_input (thesis Def. 3.7 with h_X, Balduzzi et al.) against an SVD and direct Gaussian sampling."""

import pytest
import torch

from objectives import relative_gradient_rank, score


def test_relative_rank_input_matches_svd(small_net, data, input_grad_loop):
    model = small_net()
    x, y = data(n=8)
    rows = [r.reshape(-1).double() for r in input_grad_loop(model, x, y)]
    s = torch.linalg.svdvals(torch.stack(rows))
    ra = float((s**2).sum() / s[0] ** 2)
    g = torch.Generator().manual_seed(99)
    ry = []
    for _ in range(200):
        sy = torch.linalg.svdvals(torch.randn(8, 12, generator=g, dtype=torch.float64))
        ry.append(float((sy**2).sum() / sy[0] ** 2))
    expected = ra / (sum(ry) / len(ry))
    got = relative_gradient_rank(model, x, y, variant="input")
    assert got == pytest.approx(expected, rel=0.05)  # R(Y) is a sampled mean
    assert score(model, x, y, metrics=["rank_input"])["rank_input"] == got


def test_relative_rank_rejects_unknown_variant(small_net, data):
    x, y = data()
    with pytest.raises(ValueError, match="variant"):
        relative_gradient_rank(small_net(), x, y, variant="output")
