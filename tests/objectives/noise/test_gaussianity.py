"""[003]'s Shapiro-Wilk Gaussianity percentage and Berry-Esseen moments: calibration on Gaussian and
Cauchy samples, dead weights counted apart (also in a real dead ReLU unit), the moments of Gaussian
samples, and - slow-marked - Gaussianity rising with the batch size on a CNN trained on mnist5k."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from objectives import noise as N
from objectives.noise.gaussianity import _standardized_moments


def test_shapiro_wilk_percentages_gaussian_and_cauchy():
    rng = np.random.default_rng(4)
    layers = {"g": torch.from_numpy(rng.standard_normal((200, 2000))),
              "c": torch.from_numpy(rng.standard_cauchy((200, 500)))}
    prof = N.sgn_gaussianity_profile(layers)
    assert prof.num_samples == 200
    assert prof.layers["g"].percent == pytest.approx(95, abs=2)
    assert prof.layers["g"].normalized == pytest.approx(1.0, abs=0.03)
    assert prof.layers["c"].percent < 1
    assert prof.tested == 2500 and prof.dead == 0
    assert prof.percent == pytest.approx(100 * prof.gaussian / 2500)
    with pytest.raises(ValueError, match="3..5000"):
        N.sgn_gaussianity_profile(torch.randn(2, 5))


def test_constant_weight_is_dead_not_gaussian():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((200, 50))
    x[:, 7] = 0.0  # a dead ReLU unit: its gradient is a point mass
    x[:, 9] = 0.25
    with pytest.warns(UserWarning, match="range zero"):
        assert stats.shapiro(x[:, 9]).pvalue == 1.0  # what SW alone would say: "Gaussian"
    prof = N.sgn_gaussianity_profile({"layer": torch.from_numpy(x)})
    r = prof.layers["layer"]
    assert r.dead == 2 and r.tested == 48 and r.total == 50
    assert r.gaussian <= 48


def test_dead_relu_unit_in_a_model_is_reported_dead():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    with torch.no_grad():
        model[0].bias[0] = -100.0  # hidden unit 0 never fires: 4 incoming + 3 outgoing weights dead
    x, y = torch.randn(512, 4), torch.randint(0, 3, (512,))
    hist = N.gradient_history(model, N.random_batches(x, y, 32, 60))
    prof = N.sgn_gaussianity_profile(hist)
    assert prof.layers["0.weight"].dead == 4
    assert prof.layers["2.weight"].dead == 3
    assert prof.dead == 7 and prof.tested == 20 + 15 - 7
    assert prof.batch_size == 32 and prof.num_samples == 60


def test_berry_esseen_moments_of_gaussian_samples():
    x = torch.from_numpy(np.random.default_rng(9).standard_normal((4000, 300)))
    x[:, 0] = 1.0
    res = N.berry_esseen_profile({"w": x}, batch_size=64)["w"]
    assert res.dead == 1 and res.tested == 299
    assert res.rho3_median == pytest.approx(2 * math.sqrt(2 / math.pi), rel=0.03)  # E|z|^3 = 1.596
    assert res.kurtosis_root_median == pytest.approx(math.sqrt(3), rel=0.03)
    assert res.bound_median == pytest.approx(N.BERRY_ESSEEN_A0 * res.kurtosis_root_median / 8)
    rho3, kr, _ = _standardized_moments(np.random.default_rng(10).standard_t(3, (300, 50)))
    assert np.all(rho3 >= 1 - 1e-9) and np.all(kr >= rho3 - 1e-9)  # Lyapunov and Cauchy-Schwarz


@pytest.mark.slow
def test_trend_sgn_gaussianity_rises_from_batch_8_to_256(mnist5k, small_cnn, train, snapshot, assert_identical):
    torch.set_num_threads(2)
    model = train(small_cnn([8, 16, 32]), mnist5k, steps=100)
    before = snapshot(model)
    pct = {}
    for b in (8, 256):
        hist = N.gradient_history(model, N.random_batches(mnist5k.train_x, mnist5k.train_y, b, 200, seed=b),
                                  max_weights_per_layer=300)
        prof = N.sgn_gaussianity_profile(hist)
        pct[b] = prof
        print(f"\n[003 trend] batch {b}: Gaussianity {prof.percent:.1f}% over {prof.tested} weights "
              f"(M = {prof.num_samples}, dead {prof.dead}); per layer "
              + ", ".join(f"{n} {r.percent:.1f}%" for n, r in prof.layers.items()))
    assert_identical(model, before)
    assert pct[256].percent > pct[8].percent + 10
