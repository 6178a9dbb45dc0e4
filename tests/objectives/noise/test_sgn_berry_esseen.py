"""``sgn_berry_esseen`` ([003] eq. 13 with eq. 21) against fourth moments of per-example gradients
computed by plain backward passes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from objectives import noise as N


def test_sgn_berry_esseen_matches_hand_computation(mlp, data, per_example_loop):
    model = mlp()
    x, y = data(32)
    g = per_example_loop(model, x, y).numpy()
    cols, offset = [], 0
    for p in model.parameters():  # the weight matrices' columns of the flat per-example gradients
        if p.dim() > 1:
            cols.append(np.arange(offset, offset + p.numel()))
        offset += p.numel()
    w = g[:, np.concatenate(cols)]
    z = (w - w.mean(0)) / w.std(0)  # population moments
    kurt_root = np.sqrt((z**4).mean(0))
    for b, q in ((None, 0.5), (8, 0.5), (32, 0.9)):
        expected = N.BERRY_ESSEEN_A0 * np.quantile(kurt_root, q) / math.sqrt(32 if b is None else b)
        got = N.sgn_berry_esseen(model, x, y, batch_size=b, quantile=q, max_weights=None)
        assert got == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="quantile"):
        N.sgn_berry_esseen(model, x, y, quantile=1.5)
    with pytest.raises(ValueError, match="at least 4"):
        N.sgn_berry_esseen(model, x[:3], y[:3])
