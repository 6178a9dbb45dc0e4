"""weight_coherence (H_n, thesis Def. 4.1) against a closed form and a manual perturbation."""

import pytest

from objectives import weight_gradient_coherence


def test_weight_coherence_of_a_quadratic_is_one(quadratic_problem):
    model, x, t, loss, _, _ = quadratic_problem()
    assert weight_gradient_coherence(model, x, t, loss) == pytest.approx(1.0, rel=1e-4)


def test_weight_coherence_matches_manual_perturbation(small_net, data, mean_perturbations):
    model = small_net()
    x, y = data()
    g0, _, _, gs = mean_perturbations(model, x, y)
    coh = float(sum(g0 @ gk for gk in gs) / sum(gk.norm() ** 2 for gk in gs))
    assert weight_gradient_coherence(model, x, y) == pytest.approx(coh, rel=1e-4)
