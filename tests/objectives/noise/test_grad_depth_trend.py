"""``grad_depth_trend`` ([000] Table 1, Fig. 1) against a plain backward pass, and on a network whose
layer gradient norms fall (or rise) with depth by construction."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from objectives import noise as N


def test_grad_depth_trend_matches_hand_computation(mlp, data):
    model = mlp()
    x, y = data(32)
    ref = copy.deepcopy(model)
    F.cross_entropy(ref(x), y).backward()
    norms = [float(p.grad.double().norm()) for p in ref.parameters() if p.dim() > 1]
    rho = stats.spearmanr(np.arange(3), norms).statistic
    assert N.grad_depth_trend(model, x, y) == pytest.approx(rho)
    slope = np.polyfit([0, 0.5, 1], np.log(norms), 1)[0]
    assert N.grad_depth_trend(model, x, y, trend="log_slope") == pytest.approx(slope, rel=1e-4)
    with pytest.raises(ValueError, match="trend"):
        N.grad_depth_trend(model, x, y, trend="up")


class ScaledBranches(nn.Module):
    """out = sum_l scale_l * W_l x, the branches run in order l = 1..L: the gradient of W_l is
    scale_l * (1/n) sum_i delta_i x_i^T, so its norm is proportional to scale_l whatever the weights."""

    def __init__(self, scales):
        super().__init__()
        self.scales = list(scales)
        self.branches = nn.ModuleList(nn.Linear(6, 3, bias=False) for _ in self.scales)

    def forward(self, x):
        out = 0
        for s, branch in zip(self.scales, self.branches):
            out = out + s * branch(x)
        return out


@pytest.mark.parametrize("ratio", [0.5, 2.0])
def test_grad_depth_trend_on_norms_known_by_construction(ratio):
    torch.manual_seed(0)
    model = ScaledBranches(ratio**k for k in range(5))
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    sign = 1.0 if ratio > 1 else -1.0
    assert N.grad_depth_trend(model, x, y) == pytest.approx(sign)  # strictly monotone in depth
    # ln ||g_l|| = l ln(ratio) + c over normalized depth (l - 1) / 4: slope 4 ln(ratio)
    assert N.grad_depth_trend(model, x, y, trend="log_slope") == pytest.approx(4 * math.log(ratio), rel=1e-5)
