"""weight_diversity (D_n, thesis Def. 4.1) against a closed form and a manual perturbation."""

import pytest

from objectives import weight_gradient_diversity


def test_weight_diversity_of_a_quadratic_is_one_half(quadratic_problem):
    model, x, t, loss, _, _ = quadratic_problem()
    # two nearly identical perturbed gradients: sum ||G_i||^2 / ||sum G_i||^2 ~ 1/2
    assert weight_gradient_diversity(model, x, t, loss) == pytest.approx(0.5, rel=1e-4)


def test_weight_diversity_matches_manual_perturbation(small_net, data, mean_perturbations):
    model = small_net()
    x, y = data()
    _, _, _, gs = mean_perturbations(model, x, y)
    div = float(sum(gk.norm() ** 2 for gk in gs) / sum(gs).norm() ** 2)
    assert weight_gradient_diversity(model, x, y) == pytest.approx(div, rel=1e-4)
