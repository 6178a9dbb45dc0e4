"""``grad_norm_cv`` ([000] Table 1) against group gradients computed by plain backward passes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import objectives


def test_grad_norm_cv_matches_hand_computation(mlp, data):
    model = mlp()
    x, y = data(32)
    groups = []
    for k in range(4):
        m = copy.deepcopy(model)
        F.cross_entropy(m(x[8 * k : 8 * k + 8]), y[8 * k : 8 * k + 8]).backward()
        groups.append({n: p.grad.double().norm() for n, p in m.named_parameters() if p.dim() > 1})
    cvs = []
    for n in groups[0]:
        v = torch.stack([g[n] for g in groups])
        cvs.append(float(v.std() / v.mean()))
    assert objectives.score(model, x, y, metrics=["grad_norm_cv"])["grad_norm_cv"] == pytest.approx(
        np.mean(cvs), rel=1e-4
    )
