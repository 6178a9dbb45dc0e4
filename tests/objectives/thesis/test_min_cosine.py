"""min_cosine (C*, thesis Def. 4.1) against a closed form and a manual perturbation."""

import pytest

from objectives import min_gradient_cosine


def test_min_cosine_of_a_quadratic_is_one(quadratic_problem):
    model, x, t, loss, _, _ = quadratic_problem()
    # gbar(w + omega) = H(w + omega) with omega parallel to H w: every cosine ~ 1
    assert min_gradient_cosine(model, x, t, loss) == pytest.approx(1.0, abs=1e-5)


def test_min_cosine_matches_manual_perturbation(small_net, data, mean_perturbations):
    model = small_net()
    x, y = data()
    g0, _, _, gs = mean_perturbations(model, x, y)
    cos = min(float(gk @ g0 / (gk.norm() * g0.norm())) for gk in gs)
    assert min_gradient_cosine(model, x, y) == pytest.approx(cos, abs=1e-6)
