"""In-training step-consistency against the thesis formula evaluated by hand during SGD."""

import pytest
import torch
import torch.nn.functional as F

from objectives import InTrainingStepConsistency


def test_in_training_kappa_matches_thesis_formula_under_sgd(small_net, data):
    model = small_net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    tracker = InTrainingStepConsistency(model)
    batches = [data(seed=s) for s in range(4)]
    grads, weights, values = [], [], []
    for x, y in batches:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double())
        weights.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double())
        values.append(tracker.update())
        opt.step()
    assert values[0] is None
    for t in range(1, 4):
        gi, gj, w = grads[t - 1], grads[t], weights[t - 1]
        ref = float((gj - gi).norm() * w.norm() / (0.1 * gi.norm() ** 2))
        assert values[t] == pytest.approx(ref, rel=1e-4)
