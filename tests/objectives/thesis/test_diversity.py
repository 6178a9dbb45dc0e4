"""diversity (thesis Def. 3.12, Yin et al.) against group backward passes and identical gradients."""

import pytest
import torch

from objectives import gradient_diversity


def test_diversity_of_identical_gradients_is_one_over_groups(constant_net):
    x, y = torch.randn(16, 3), torch.zeros(16, dtype=torch.long)
    assert gradient_diversity(constant_net(), x, y, group_size=4) == pytest.approx(1 / 4)


def test_diversity_matches_group_backward(small_net, data, group_loop):
    model = small_net()
    x, y = data(n=16)
    groups = group_loop(model, x, y, 4)
    div = float(sum(g.norm() ** 2 for g in groups) / sum(groups).norm() ** 2)
    assert gradient_diversity(model, x, y, group_size=4) == pytest.approx(div, rel=1e-4)
