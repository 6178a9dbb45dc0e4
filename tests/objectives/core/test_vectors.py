"""Vector formulas against the sanity properties of DESIGN §3 (identical and orthogonal vectors)."""

import pytest
import torch

from objectives.core import vectors as C


def test_identical_vectors():
    v = torch.randn(1, 30).repeat(6, 1)
    assert C.diversity(v) == pytest.approx(1 / 6)
    assert C.coherence(v.mean(0), v) == pytest.approx(1.0)
    assert C.confusion(v) == 0.0


def test_orthogonal_equal_norm_vectors():
    q, _ = torch.linalg.qr(torch.randn(30, 5, dtype=torch.float64))
    v = 3.0 * q.T
    assert C.diversity(v) == pytest.approx(1.0)
    assert C.coherence(v.mean(0), v) == pytest.approx(1 / 5)
    assert C.confusion(v) == pytest.approx(0.0, abs=1e-12)
    assert C.confusion(torch.stack([v[0], -v[0]])) == pytest.approx(1.0)


def test_zero_vectors_raise():
    z = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="zero vector"):
        C.cosine(z[0], torch.ones(4))
    with pytest.raises(ValueError, match="all-zero"):
        C.coherence(torch.ones(4), z)
    assert C.diversity(z) == float("inf")
