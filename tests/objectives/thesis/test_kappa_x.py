"""kappa_x (batch-dissonance, thesis Def. 3.4) against a manual loop with the same seeded choices."""

import pytest
import torch

import objectives
from objectives import batch_dissonance


def test_kappa_x_matches_manual_loop(small_net, data, per_example_loop, input_grad_loop):
    model = small_net()
    x, y = data(n=8)
    eta, n, m = 1e-3, 3, 5
    probe = objectives.Probe(model, x, y, seed=7)
    got = batch_dissonance(model, x, y, probe=probe, eta=eta, num_directions=n, num_examples=m)
    # reference: input gradients by loop, the same random choices (seeded generator, salt 17)
    hx = input_grad_loop(model, x, y)
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
