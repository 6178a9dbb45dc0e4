"""Metric values against closed forms, sanity properties (DESIGN §3) and slow reference loops."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import objectives
from objectives import (
    InTrainingStepConsistency,
    batch_dissonance,
    gradient_coherence,
    gradient_confusion,
    gradient_diversity,
    min_gradient_cosine,
    registry,
    relative_gradient_rank,
    score,
    step_consistency,
    weight_gradient_coherence,
    weight_gradient_diversity,
)
from objectives.core import vectors as C
from objectives.core import gaussian_stable_rank

THESIS = [
    "kappa_w", "min_cosine", "weight_diversity", "weight_coherence", "kappa_x",
    "confusion", "diversity", "coherence", "rank_input", "rank_weight",
]


def small_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 10), nn.Tanh(), nn.Linear(10, 4))


def data(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 2, 2, generator=g), torch.randint(0, 4, (n,), generator=g)


# ------------------------------------------------------------------------------- vector formulas
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


class Constant(nn.Module):
    """Output is a learned bias, independent of the input: every example has the same gradient."""

    def __init__(self):
        super().__init__()
        self.b = nn.Parameter(torch.tensor([0.3, -0.2, 0.1, 0.0]))

    def forward(self, x):
        return self.b.expand(x.shape[0], -1) + 0 * x.reshape(x.shape[0], -1)[:, :1]


def test_identical_gradients_through_the_metrics():
    model = Constant()
    x = torch.randn(16, 3)
    y = torch.zeros(16, dtype=torch.long)
    assert gradient_diversity(model, x, y, group_size=4) == pytest.approx(1 / 4)
    assert gradient_coherence(model, x, y) == pytest.approx(1.0)
    assert gradient_confusion(model, x, y, group_size=4) == 0.0
    r = relative_gradient_rank(model, x, y, variant="weight")
    assert r == pytest.approx(1 / gaussian_stable_rank(16, 4), rel=1e-6)


# ------------------------------------------------------------------------------ step-consistency
class Quadratic(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x):
        return self.w.expand(x.shape[0], -1)


def test_kappa_w_quadratic_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64)
    h = (a @ a.T + torch.eye(6, dtype=torch.float64)).float()
    w = torch.randn(6, generator=g)
    loss = lambda out, t: 0.5 * ((out @ h) * out).sum(-1).mean()  # noqa: E731
    x, t = torch.zeros(4, 1), torch.zeros(4)
    model = Quadratic(w)
    got = step_consistency(model, x, t, loss, eta=1e-3)
    # omega = +-eta H w / ||H w||_inf, gradient H w: kappa = ||H H w|| ||w|| / ||H w||^2
    hw = h.double() @ w.double()
    expected = float((h.double() @ hw).norm() * w.double().norm() / hw.norm() ** 2)
    assert got == pytest.approx(expected, rel=1e-3)
    # the adaptations: gbar(w + omega) = H(w + omega): cos ~ 1, diversity ~ 1/2, coherence ~ 1
    assert min_gradient_cosine(model, x, t, loss) == pytest.approx(1.0, abs=1e-5)
    assert weight_gradient_diversity(model, x, t, loss) == pytest.approx(0.5, rel=1e-4)
    assert weight_gradient_coherence(model, x, t, loss) == pytest.approx(1.0, rel=1e-4)
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


def perturbed_reference(model, x, y, omega):
    m = copy.deepcopy(model).eval()
    with torch.no_grad():
        offset = 0
        for p in m.parameters():
            p.add_(omega[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
    F.cross_entropy(m(x), y).backward()
    return torch.cat([p.grad.reshape(-1) for p in m.parameters()]).double()


def test_kappa_w_and_adaptations_match_manual_perturbation():
    model = small_net()
    x, y = data()
    ref_model = copy.deepcopy(model)
    F.cross_entropy(ref_model(x), y).backward()
    g0 = torch.cat([p.grad.reshape(-1) for p in ref_model.parameters()]).double()
    w = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()
    eta = 1e-3
    omegas = [eta * g0 / g0.abs().max(), -eta * g0 / g0.abs().max()]
    gs = [perturbed_reference(model, x, y, o.float()) for o in omegas]
    kappa = max(float((gk - g0).norm() * w.norm() / (o.norm() * g0.norm())) for o, gk in zip(omegas, gs))
    assert step_consistency(model, x, y) == pytest.approx(kappa, rel=2e-3)
    cos = min(float(gk @ g0 / (gk.norm() * g0.norm())) for gk in gs)
    assert min_gradient_cosine(model, x, y) == pytest.approx(cos, abs=1e-6)
    div = float(sum(gk.norm() ** 2 for gk in gs) / sum(gs).norm() ** 2)
    assert weight_gradient_diversity(model, x, y) == pytest.approx(div, rel=1e-4)
    coh = float(sum(g0 @ gk for gk in gs) / sum(gk.norm() ** 2 for gk in gs))
    assert weight_gradient_coherence(model, x, y) == pytest.approx(coh, rel=1e-4)


def test_in_training_kappa_matches_thesis_formula_under_sgd():
    model = small_net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    tracker = InTrainingStepConsistency(model)
    batches = [data(seed=s) for s in range(4)]
    grads, weights, values = [], [], []
    for x, y in batches:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double())
        weights.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double())
        values.append(tracker.update())
        opt.step()
    assert values[0] is None
    for t in range(1, 4):
        gi, gj, w = grads[t - 1], grads[t], weights[t - 1]
        ref = float((gj - gi).norm() * w.norm() / (0.1 * gi.norm() ** 2))
        assert values[t] == pytest.approx(ref, rel=1e-4)


# ----------------------------------------------------------------------------- batch-dissonance
def per_example_loop(model, x, y):
    rows = []
    for i in range(x.shape[0]):
        m = copy.deepcopy(model).eval()
        F.cross_entropy(m(x[i : i + 1]), y[i : i + 1]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in m.parameters()]).double())
    return torch.stack(rows)


def test_confusion_diversity_coherence_match_group_backward():
    model = small_net()
    x, y = data(n=16)
    groups = []
    for k in range(4):
        m = copy.deepcopy(model)
        F.cross_entropy(m(x[4 * k : 4 * k + 4]), y[4 * k : 4 * k + 4]).backward()
        groups.append(torch.cat([p.grad.reshape(-1) for p in m.parameters()]).double())
    cos = min(
        float(groups[i] @ groups[j] / (groups[i].norm() * groups[j].norm()))
        for i in range(4) for j in range(4) if i != j
    )
    assert gradient_confusion(model, x, y, group_size=4) == pytest.approx(max(-cos, 0.0), abs=1e-5)
    div = float(sum(g.norm() ** 2 for g in groups) / sum(groups).norm() ** 2)
    assert gradient_diversity(model, x, y, group_size=4) == pytest.approx(div, rel=1e-4)
    ex = per_example_loop(model, x, y)
    coh = float((ex @ ex.mean(0)).sum() / (ex**2).sum())
    assert gradient_coherence(model, x, y) == pytest.approx(coh, rel=1e-4)


def test_kappa_x_matches_manual_loop():
    model = small_net()
    x, y = data(n=8)
    eta, n, m = 1e-3, 3, 5
    probe = objectives.Probe(model, x, y, seed=7)
    got = batch_dissonance(model, x, y, probe=probe, eta=eta, num_directions=n, num_examples=m)
    # reference: input gradients by loop, the same random choices (seeded generator, salt 17)
    hx = []
    for i in range(8):
        xi = x[i : i + 1].clone().requires_grad_(True)
        F.cross_entropy(model(xi), y[i : i + 1]).backward()
        hx.append(xi.grad[0])
    gen = probe.generator(17)
    idx = torch.randperm(8, generator=gen)[:n]
    signs = torch.randint(0, 2, (n,), generator=gen) * 2 - 1
    base = per_example_loop(model, x[:m], y[:m])
    vals = []
    for i in range(m):
        best = 0.0
        for k, j in enumerate(idx.tolist()):
            d = signs[k] * eta * hx[j] / hx[j].norm()
            moved = per_example_loop(model, (x[i] + d)[None], y[i : i + 1])[0]
            r = float((moved - base[i]).norm() * x[i].double().norm() / (d.double().norm() * base[i].norm()))
            best = max(best, r)
        vals.append(best)
    assert got == pytest.approx(sum(vals) / m, rel=2e-3)


def test_relative_rank_input_matches_svd():
    model = small_net()
    x, y = data(n=8)
    rows = []
    for i in range(8):
        xi = x[i : i + 1].clone().requires_grad_(True)
        F.cross_entropy(model(xi), y[i : i + 1]).backward()
        rows.append(xi.grad.reshape(-1).double())
    s = torch.linalg.svdvals(torch.stack(rows))
    ra = float((s**2).sum() / s[0] ** 2)
    g = torch.Generator().manual_seed(99)
    ry = []
    for _ in range(200):
        sy = torch.linalg.svdvals(torch.randn(8, 12, generator=g, dtype=torch.float64))
        ry.append(float((sy**2).sum() / sy[0] ** 2))
    expected = ra / (sum(ry) / len(ry))
    got = relative_gradient_rank(model, x, y, variant="input")
    assert got == pytest.approx(expected, rel=0.05)  # R(Y) is a sampled mean


# ---------------------------------------------------------------------------------- contracts
def test_registry_lists_thesis_metrics_with_metadata():
    for name in THESIS:
        e = registry.get(name)
        assert e.direction in ("minimize", "maximize")
        assert e.citation and e.summary
    with pytest.raises(KeyError, match="valid metrics: .*kappa_w"):
        registry.get("kappa")
    assert registry.names("rank_*") == ["rank_input", "rank_weight"]


@pytest.mark.parametrize("mode", ["frozen", "contribution"])
def test_score_is_deterministic_and_equals_single_calls(mode):
    model = small_net()
    x, y = data()
    a = score(model, x, y, metrics=THESIS, bn_mode=mode, seed=3, group_size=4)
    b = score(model, x, y, metrics=THESIS, bn_mode=mode, seed=3, group_size=4)
    assert a == b
    assert all(torch.isfinite(torch.tensor(v)) for v in a.values())
    assert a["confusion"] == gradient_confusion(model, x, y, group_size=4, bn_mode=mode, seed=3)
    assert a["kappa_w"] == step_consistency(model, x, y, bn_mode=mode, seed=3)


def test_bad_inputs_raise_value_error():
    model = small_net()
    x, y = data()
    with pytest.raises(ValueError, match="empty batch"):
        score(model, x[:0], y[:0], metrics=["coherence"])
    with pytest.raises(ValueError, match="batch size"):
        score(model, x, y[:5], metrics=["coherence"])
    frozen = small_net()
    for p in frozen.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        score(frozen, x, y, metrics=["coherence"])
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        score(model, bad, y, metrics=["coherence"])
    with pytest.raises(ValueError, match="not finite"):
        score(model, x, y, metrics=["coherence"], loss_fn=lambda o, t: o.sum() * float("inf"))
    with pytest.raises(ValueError, match="unknown metric 'nope'.*valid metrics"):
        score(model, x, y, metrics=["nope"])
    with pytest.raises(ValueError, match="unknown option"):
        score(model, x, y, metrics=["coherence"], etaa=1)
    with pytest.raises(ValueError, match="bn_mode"):
        score(model, x, y, metrics=["coherence"], bn_mode="batch")
    with pytest.raises(ValueError, match="directions"):
        step_consistency(model, x, y, directions="sideways")
    with pytest.raises(ValueError, match="group_size"):
        gradient_confusion(model, x, y, group_size=16)
