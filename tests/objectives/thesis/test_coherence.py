"""coherence (thesis Def. 3.13, Chatterjee & Zielinski) against a per-example loop and identical gradients."""

import pytest
import torch

from objectives import gradient_coherence


def test_coherence_of_identical_gradients_is_one(constant_net):
    x, y = torch.randn(16, 3), torch.zeros(16, dtype=torch.long)
    assert gradient_coherence(constant_net(), x, y) == pytest.approx(1.0)


def test_coherence_matches_per_example_loop(small_net, data, per_example_loop):
    model = small_net()
    x, y = data(n=16)
    ex = per_example_loop(model, x, y)
    coh = float((ex @ ex.mean(0)).sum() / (ex**2).sum())
    assert gradient_coherence(model, x, y) == pytest.approx(coh, rel=1e-4)
