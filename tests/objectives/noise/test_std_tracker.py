"""[002]'s gradient-std tracking: the global std s_t and per-layer std and norm against plain
concatenations over real training steps, the stride."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from objectives import noise as N


def test_gradient_std_tracker_records_002_quantities(bn_convnet, data):
    model = bn_convnet()
    x, y = data(64, shape=(1, 8, 8), classes=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    tracker = N.GradientStdTracker(model, order=N.layer_order(model, x))
    for step in range(6):
        opt.zero_grad()
        F.cross_entropy(model(x[step * 8 : step * 8 + 16]), y[step * 8 : step * 8 + 16]).backward()
        s = tracker.update()
        eligible = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad.dim() > 1])
        assert s == pytest.approx(float(eligible.double().std()), rel=1e-6)
        assert tracker.layer_std["4.weight"][-1] == pytest.approx(float(model[4].weight.grad.std()), rel=1e-6)
        assert tracker.layer_norm["0.weight"][-1] == pytest.approx(float(model[0].weight.grad.norm()), rel=1e-6)
        opt.step()
    assert list(tracker.layer_std) == ["0.weight", "4.weight", "7.weight", "10.weight"]
    summary = tracker.summary()
    assert summary["num_steps"] == 6 and -1 <= summary["global_std_spearman"] <= 1
    assert summary["global_std_spearman"] == pytest.approx(stats.spearmanr(range(6), tracker.global_std).statistic)
    assert 0 <= summary["layers_rising"] <= 4 and summary["min_layer_std"] > 0
    assert len(tracker.norm_profile().rows()) == 4
    strided = N.GradientStdTracker(model, stride=2)
    assert [strided.update() is None for _ in range(4)] == [False, True, False, True]
