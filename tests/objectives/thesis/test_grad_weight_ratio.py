"""grad_weight_ratio against a plain backward pass and the closed form of a quadratic."""

import pytest
import torch
import torch.nn.functional as F

from objectives.thesis import grad_weight_ratio


def test_grad_weight_ratio_matches_plain_backward(small_net, data):
    model = small_net()
    x, y = data()
    F.cross_entropy(model(x), y).backward()
    g = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double()
    w = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()
    model.zero_grad(set_to_none=True)
    assert grad_weight_ratio(model, x, y) == pytest.approx(float(g.norm() / w.norm()), rel=1e-5)


def test_grad_weight_ratio_of_a_quadratic(quadratic_problem):
    model, x, t, loss, h, w = quadratic_problem()
    # gradient of 0.5 w'Hw is H w
    expected = float((h.double() @ w.double()).norm() / w.double().norm())
    assert grad_weight_ratio(model, x, t, loss) == pytest.approx(expected, rel=1e-5)
