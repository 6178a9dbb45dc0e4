"""confusion (thesis Def. 3.11, Sankararaman et al.) against group backward passes and identical gradients."""

import pytest
import torch

from objectives import gradient_confusion


def test_confusion_of_identical_gradients_is_zero(constant_net):
    x, y = torch.randn(16, 3), torch.zeros(16, dtype=torch.long)
    assert gradient_confusion(constant_net(), x, y, group_size=4) == 0.0


def test_confusion_matches_group_backward(small_net, data, group_loop):
    model = small_net()
    x, y = data(n=16)
    groups = group_loop(model, x, y, 4)
    cos = min(
        float(groups[i] @ groups[j] / (groups[i].norm() * groups[j].norm()))
        for i in range(4) for j in range(4) if i != j
    )
    assert gradient_confusion(model, x, y, group_size=4) == pytest.approx(max(-cos, 0.0), abs=1e-5)


def test_confusion_needs_two_groups(small_net, data):
    x, y = data()
    with pytest.raises(ValueError, match="group_size"):
        gradient_confusion(small_net(), x, y, group_size=16)
