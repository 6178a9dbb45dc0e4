"""kappa_w (step-consistency, thesis Def. 2.5) against its closed form on a quadratic and a manual perturbation."""

import pytest

import objectives
from objectives import step_consistency


def test_kappa_w_quadratic_closed_form(quadratic_problem):
    model, x, t, loss, h, w = quadratic_problem()
    got = step_consistency(model, x, t, loss, eta=1e-3)
    # omega = +-eta H w / ||H w||_inf, gradient H w: kappa = ||H H w|| ||w|| / ||H w||^2
    hw = h.double() @ w.double()
    expected = float((h.double() @ hw).norm() * w.double().norm() / hw.norm() ** 2)
    assert got == pytest.approx(expected, rel=1e-3)
    # any direction: kappa = ||H omega|| ||w|| / (||omega|| ||H w||) for the chosen omega
    for directions in ("random", "examples"):
        k = step_consistency(model, x, t, loss, directions=directions, num_directions=3, eta=1e-3)
        probe = objectives.Probe(model, x, t, loss)
        omegas = probe.weight_directions(directions, 3, 1e-3).double()
        ref = max(
            float((h.double() @ o).norm() * w.double().norm() / (o.norm() * hw.norm()))
            for o in omegas
        )
        assert k == pytest.approx(ref, rel=1e-3)


def test_kappa_w_matches_manual_perturbation(small_net, data, mean_perturbations):
    model = small_net()
    x, y = data()
    g0, w, omegas, gs = mean_perturbations(model, x, y)
    kappa = max(float((gk - g0).norm() * w.norm() / (o.norm() * g0.norm())) for o, gk in zip(omegas, gs))
    assert step_consistency(model, x, y) == pytest.approx(kappa, rel=2e-3)


def test_kappa_w_rejects_unknown_directions(small_net, data):
    x, y = data()
    with pytest.raises(ValueError, match="directions"):
        step_consistency(small_net(), x, y, directions="sideways")


def test_kappa_w_is_invariant_to_the_scale_of_the_curvature(quadratic_problem):
    """A relative condition number: kappa of 0.5 w'(cH)w equals kappa of 0.5 w'Hw for any c > 0."""
    model, x, t, _, h, _ = quadratic_problem()
    base = step_consistency(model, x, t, lambda o, _t: 0.5 * ((o @ h) * o).sum(-1).mean())
    scaled = step_consistency(model, x, t, lambda o, _t: 0.5 * ((o @ (7 * h)) * o).sum(-1).mean())
    assert scaled == pytest.approx(base, rel=1e-3)
