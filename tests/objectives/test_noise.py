"""Tests of the gradient-noise statistics (objectives/noise.py).

Statistical building blocks against synthetic data with known answers (power-law MLE, normality-test
calibration, Gram trick, chance cosine, dead weights, Berry-Esseen moments), the gradient collection
against plain autograd loops, the registered metrics against hand computations and the common
contract (finite, deterministic, model bit-identical), and - slow-marked - the trend checks of the
papers on a small CNN trained briefly on mnist5k.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

import objectives
from objectives import noise as N
from objectives import registry

NOISE_METRICS = {
    "grad_norm_cv": "minimize",
    "grad_depth_trend": "minimize",
    "sgn_gaussianity": "maximize",
    "sgn_berry_esseen": "minimize",
    "spectrum_s": "maximize",
    "spectrum_ks": "minimize",
}


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 10), nn.Tanh(), nn.Linear(10, 8), nn.Tanh(), nn.Linear(8, 4))


def bn_convnet(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 12), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(12, 3),
    )


def data(n: int = 32, shape=(3, 2, 2), classes: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_identical(model: nn.Module, before: dict[str, torch.Tensor], training: bool = True) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys()
    for k, v in before.items():
        assert torch.equal(after[k], v), k
    assert all(p.grad is None for p in model.parameters())
    assert model.training is training


# ================================================================================ power law (001)
def test_mle_recovers_pareto_exponent():
    rng = np.random.default_rng(0)
    beta = 2.5
    x = (1 - rng.random(20000)) ** (-1 / (beta - 1))  # Pareto, x_min = 1, p(x) ~ x^-2.5
    fit = N.fit_power_law(x, k=1000)
    assert fit.k == 1000
    assert fit.beta == pytest.approx(beta, abs=0.15)  # standard error (beta - 1)/sqrt(K) ~ 0.05
    assert fit.s == pytest.approx(1 / (fit.beta - 1))
    assert fit.ks_critical == pytest.approx(0.0430, abs=1e-4)  # [001]'s d_c for K = 1000
    assert fit.passes and fit.ks_distance < fit.ks_critical
    assert fit.preferred != "lognormal"


def test_mle_recovers_zipf_rank_exponent():
    lam = np.arange(1, 5001, dtype=np.float64) ** -1.3  # lambda_k = k^-s, s = 1.3
    fit = N.fit_power_law(np.random.default_rng(1).permutation(lam), k=1000)
    assert fit.s == pytest.approx(1.3, abs=0.05)
    assert fit.passes


def test_power_law_rejects_exponential_and_handles_degenerate_input():
    x = np.random.default_rng(2).exponential(size=20000)
    fit = N.fit_power_law(x, k=1000)
    assert not fit.passes
    assert fit.loglik_ratio < 0 and fit.preferred == "lognormal"
    with pytest.raises(ValueError, match="at least 3"):
        N.fit_power_law([1.0, 0.0, -2.0])
    with pytest.raises(ValueError, match="equal"):
        N.fit_power_law(np.ones(50))


# =========================================================================== normality calibration
def test_normality_rates_gaussian_about_95_and_cauchy_about_0():
    rng = np.random.default_rng(3)
    gauss = N.gradient_history_tests(rng.standard_normal((200, 1500)), max_vectors=1500, k=200)
    # iteration-wise: each of 1500 parameters tested on 100 of its 200 samples
    assert gauss.iteration.normal_points == 100 and gauss.iteration.tested == 1500
    assert gauss.iteration.gaussian_rate == pytest.approx(95, abs=2.5)
    assert gauss.dimension.gaussian_rate == pytest.approx(95, abs=5)  # only 200 rows
    assert gauss.iteration.power_law_rate < 5  # Gaussian magnitudes are not power-law
    cauchy = N.gradient_history_tests(rng.standard_cauchy((200, 1500)), max_vectors=1500)
    assert cauchy.iteration.gaussian_rate < 2
    assert cauchy.dimension.gaussian_rate < 2


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
    tests = N.gradient_history_tests(x, k=200)
    assert tests.iteration.dead == 2 and tests.iteration.tested == 48


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


# ============================================================================== Gram trick, spectra
@pytest.mark.parametrize("n,d", [(7, 20), (30, 5), (12, 12)])
def test_gram_trick_equals_full_covariance(n, d):
    g = np.random.default_rng(6).standard_normal((n, d)) * np.linspace(3, 0.2, d)
    for center in (True, False):
        got = N.gram_eigenvalues(torch.from_numpy(g), center=center)
        a = g - g.mean(0) if center else g
        full = np.sort(np.linalg.eigvalsh(a.T @ a / n))[::-1]
        assert got.shape == (min(n, d),)
        np.testing.assert_allclose(got, full[: min(n, d)], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        np.sort(np.linalg.eigvalsh(np.cov(g.T, bias=True)))[::-1][: min(n, d)],
        N.gram_eigenvalues(g), rtol=1e-9, atol=1e-12,
    )


def test_spectrum_statistics_on_a_known_spectrum():
    lam = 1.0 / np.arange(1, 201) ** 1.2
    n = lam.size
    g = np.diag(np.sqrt(n * lam))  # second moment (1/n) G^T G = diag(lam)
    spec = N.covariance_spectrum(g, center=False)
    np.testing.assert_allclose(spec.eigenvalues, lam, rtol=1e-10)
    assert spec.available == 200
    assert spec.ratio_10 == pytest.approx(10**1.2)
    assert spec.ratio_100 == pytest.approx(100**1.2)
    cum = np.cumsum(lam) / lam.sum()
    assert spec.explained_top10 == pytest.approx(cum[9])
    assert spec.explained_top10pct == pytest.approx(cum[19])
    assert spec.effective_rank_90 == int(np.argmax(cum >= 0.9) + 1)
    assert spec.effective_rank_90_fraction == pytest.approx(spec.effective_rank_90 / 200)
    assert spec.stable_rank == pytest.approx(lam.sum())
    assert spec.power_law is not None and spec.power_law.s == pytest.approx(1.2, abs=0.1)
    assert "pl_s" in spec.summary() and "eigenvalues" not in spec.summary()


def test_spectrum_padding_rule_for_small_layers():
    g = np.random.default_rng(7).standard_normal((40, 6))  # a 6-parameter layer
    spec = N.covariance_spectrum(g)
    assert spec.available == 6
    assert spec.ratio_10 == spec.ratio_100 == pytest.approx(spec.eigenvalues[0] / spec.eigenvalues[5])
    rank_one = N.covariance_spectrum(np.ones((5, 3)), center=False)
    assert rank_one.available == 1
    assert rank_one.ratio_10 == rank_one.ratio_100 == 1.0
    assert rank_one.power_law is None
    with pytest.raises(ValueError, match="zero"):
        N.covariance_spectrum(np.ones((5, 3)))  # identical rows: no noise


# ============================================================================== alignment (000)
def test_chance_cosine_matches_monte_carlo():
    gen = torch.Generator().manual_seed(8)
    for d in (10, 200, 2000):
        u = torch.randn(4000, d, generator=gen, dtype=torch.float64)
        v = torch.randn(4000, d, generator=gen, dtype=torch.float64)
        mc = float(F.cosine_similarity(u, v, dim=1).abs().mean())
        assert mc == pytest.approx(N.chance_cosine(d), rel=0.04)
        if d >= 200:
            assert mc == pytest.approx(math.sqrt(2 / (math.pi * d)), rel=0.04)
    assert N.chance_cosine(1) == pytest.approx(1.0)
    assert N.chance_cosine(10**6, exact=False) == pytest.approx(N.chance_cosine(10**6), rel=1e-5)


def test_cross_seed_alignment_identical_and_independent_copies():
    batches = [data(16, seed=s) for s in range(2)]
    same = N.cross_seed_alignment(lambda s: mlp(0), batches, seeds=3, num_bootstrap=50)
    assert list(same) == ["1.weight", "3.weight", "5.weight"]
    for r in same.values():
        assert r.mean_cosine == pytest.approx(1.0) and r.ci_low == pytest.approx(1.0)
        assert r.num_seeds == 3 and r.num_batches == 2
    models = {}

    def make(seed):
        models[seed] = mlp(100 + seed)
        return models[seed]

    before = {s: snapshot(mlp(100 + s)) for s in range(4)}
    res = N.cross_seed_alignment(make, batches, seeds=4, num_bootstrap=200, seed=1)
    for s, m in models.items():
        assert_identical(m, before[s])
    r = res["1.weight"]
    assert r.dim == 120 and r.chance == pytest.approx(N.chance_cosine(120))
    assert -1 <= r.ci_low <= r.mean_cosine <= r.ci_high <= 1
    assert r.cosines.shape == (4, 4) and np.allclose(np.diag(r.cosines), 1.0)
    assert r.excess == pytest.approx(r.mean_abs_cosine - r.chance)
    with pytest.raises(ValueError, match="2 seeds"):
        N.cross_seed_alignment(make, batches, seeds=1)


# ================================================================ gradient collection and profiles
def test_layer_gradients_match_autograd_and_leave_the_model_alone():
    model = bn_convnet()
    x, y = data(16, shape=(1, 8, 8), classes=3)
    before = snapshot(model)
    got = N.layer_gradients(model, x, y)
    assert_identical(model, before)
    ref = copy.deepcopy(model)
    ref.train()
    ref[9].p = 0.0  # layer_gradients evaluates with dropout off, BatchNorm on batch statistics
    F.cross_entropy(ref(x), y).backward()
    for name, p in ref.named_parameters():
        torch.testing.assert_close(got[name], p.grad.reshape(-1), rtol=1e-5, atol=1e-6)


def test_layer_order_follows_the_forward_pass():
    class Reordered(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(5, 2)  # registered first, runs last
            self.body = nn.Linear(3, 5)

        def forward(self, x):
            return self.head(torch.relu(self.body(x)))

    m = Reordered()
    assert N.layer_order(m) == ["head.weight", "head.bias", "body.weight", "body.bias"]
    assert N.layer_order(m, torch.randn(2, 3)) == ["body.weight", "body.bias", "head.weight", "head.bias"]


def test_gradient_history_subsamples_and_keeps_full_norms():
    model = mlp()
    x, y = data(128)
    hist = N.gradient_history(model, N.random_batches(x, y, 16, 10, seed=3), max_weights_per_layer=20)
    assert hist.names == ["1.weight", "3.weight", "5.weight"] and hist.num_batches == 10
    assert hist.layers["1.weight"].shape == (10, 20) and hist.layers["5.weight"].shape == (10, 20)
    assert hist.sizes["1.weight"] == 120 and hist.indices["1.weight"].numel() == 20
    assert hist.matrix().shape == (10, 60)
    batches = list(N.random_batches(x, y, 16, 10, seed=3))
    full = N.layer_gradients(model, *batches[4])["1.weight"]
    assert hist.norms["1.weight"][4] == pytest.approx(float(full.double().norm()), rel=1e-6)
    torch.testing.assert_close(hist.layers["1.weight"][4], full[hist.indices["1.weight"]])
    with pytest.raises(ValueError, match="same size"):
        N.gradient_history(model, [data(8), data(4)])


def test_norm_profile_and_depth_trend():
    steps = np.arange(10)
    norms = {f"l{k}": (4.0 - k) * np.exp(-0.1 * steps) * (1 + 0.05 * k * (-1) ** steps) for k in range(4)}
    prof = N.layer_norm_profile(norms, early=0.2, late=0.2)
    x = np.stack(list(norms.values()), axis=1)
    np.testing.assert_allclose(prof.mean, x.mean(0))
    np.testing.assert_allclose(prof.cv, x.std(0, ddof=1) / x.mean(0))
    np.testing.assert_allclose(prof.ratio, x[:2].mean(0) / x[-2:].mean(0))
    assert prof.early_steps == prof.late_steps == 2 and prof.num_steps == 10
    assert prof.mean_trend.spearman == pytest.approx(-1.0)
    assert len(prof.rows()) == 4 and prof.rows()[0]["layer"] == "l0"
    geo = N.depth_trend([2.0**-k for k in range(5)])
    assert geo.spearman == pytest.approx(-1.0)
    assert geo.log_slope == pytest.approx(-4 * math.log(2))  # normalized depth: whole net = 1
    assert math.isnan(N.depth_trend([1.0, 1.0, 1.0]).spearman)
    assert math.isnan(N.depth_trend([1.0, 0.0, 2.0]).log_slope)
    with pytest.raises(ValueError):
        N.depth_trend([1.0])


def test_berry_esseen_moments_of_gaussian_samples():
    x = torch.from_numpy(np.random.default_rng(9).standard_normal((4000, 300)))
    x[:, 0] = 1.0
    res = N.berry_esseen_profile({"w": x}, batch_size=64)["w"]
    assert res.dead == 1 and res.tested == 299
    assert res.rho3_median == pytest.approx(2 * math.sqrt(2 / math.pi), rel=0.03)  # E|z|^3 = 1.596
    assert res.kurtosis_root_median == pytest.approx(math.sqrt(3), rel=0.03)
    assert res.bound_median == pytest.approx(N.BERRY_ESSEEN_A0 * res.kurtosis_root_median / 8)
    rho3, kr, _ = N._standardized_moments(np.random.default_rng(10).standard_t(3, (300, 50)))
    assert np.all(rho3 >= 1 - 1e-9) and np.all(kr >= rho3 - 1e-9)  # Lyapunov and Cauchy-Schwarz


def test_gradient_std_tracker_records_002_quantities():
    model = bn_convnet()
    x, y = data(64, shape=(1, 8, 8), classes=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    tracker = N.GradientStdTracker(model, order=N.layer_order(model, x))
    for step in range(6):
        opt.zero_grad()
        F.cross_entropy(model(x[step * 8 : step * 8 + 16]), y[step * 8 : step * 8 + 16]).backward()
        s = tracker.update()
        eligible = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad.dim() > 1])
        assert s == pytest.approx(float(eligible.double().std()), rel=1e-6)
        assert tracker.layer_std["4.weight"][-1] == pytest.approx(float(model[4].weight.grad.std()), rel=1e-6)
        assert tracker.layer_norm["0.weight"][-1] == pytest.approx(float(model[0].weight.grad.norm()), rel=1e-6)
        opt.step()
    assert list(tracker.layer_std) == ["0.weight", "4.weight", "7.weight", "10.weight"]
    summary = tracker.summary()
    assert summary["num_steps"] == 6 and -1 <= summary["global_std_spearman"] <= 1
    assert 0 <= summary["layers_rising"] <= 4 and summary["min_layer_std"] > 0
    assert len(tracker.norm_profile().rows()) == 4
    strided = N.GradientStdTracker(model, stride=2)
    assert [strided.update() is None for _ in range(4)] == [False, True, False, True]


# ========================================================================= registered metrics
def test_registry_entries():
    for name, direction in NOISE_METRICS.items():
        e = registry.get(name)
        assert e.direction == direction
        assert e.citation and e.summary and e.fn.__module__ == "objectives.noise"
        assert "probe" in e.options


def test_grad_norm_cv_and_depth_trend_match_hand_computation():
    model = mlp()
    x, y = data(32)
    groups = []
    for k in range(4):
        m = copy.deepcopy(model)
        F.cross_entropy(m(x[8 * k : 8 * k + 8]), y[8 * k : 8 * k + 8]).backward()
        groups.append({n: p.grad.double().norm() for n, p in m.named_parameters() if p.dim() > 1})
    cvs = []
    for n in groups[0]:
        v = torch.stack([g[n] for g in groups])
        cvs.append(float(v.std() / v.mean()))
    assert objectives.score(model, x, y, metrics=["grad_norm_cv"])["grad_norm_cv"] == pytest.approx(
        np.mean(cvs), rel=1e-4
    )
    ref = copy.deepcopy(model)
    F.cross_entropy(ref(x), y).backward()
    norms = [float(p.grad.double().norm()) for p in ref.parameters() if p.dim() > 1]
    rho = stats.spearmanr(np.arange(3), norms).statistic
    assert N.grad_depth_trend(model, x, y) == pytest.approx(rho)
    slope = np.polyfit([0, 0.5, 1], np.log(norms), 1)[0]
    assert N.grad_depth_trend(model, x, y, trend="log_slope") == pytest.approx(slope, rel=1e-4)
    with pytest.raises(ValueError, match="trend"):
        N.grad_depth_trend(model, x, y, trend="up")


def test_noise_metrics_contract_finite_deterministic_model_unchanged():
    model = bn_convnet()
    x, y = data(64, shape=(1, 8, 8), classes=3)
    before = snapshot(model)
    names = list(NOISE_METRICS)
    a = objectives.score(model, x, y, metrics=names, seed=3)
    b = objectives.score(model, x, y, metrics=names, seed=3)
    assert a == b
    assert all(math.isfinite(v) for v in a.values())
    assert 0 <= a["sgn_gaussianity"] <= 100 and -1 <= a["grad_depth_trend"] <= 1
    assert a["grad_norm_cv"] > 0 and a["spectrum_s"] > 0 and 0 < a["spectrum_ks"] < 1
    assert_identical(model, before)
    model.eval()
    objectives.score(model, x, y, metrics=names, bn_mode="contribution")
    assert_identical(model, before, training=False)
    with pytest.raises(ValueError, match="batch_size"):
        N.sgn_gaussianity(model, x, y, batch_size=64)


def test_sgn_gaussianity_rises_with_the_subsample_size_on_a_linear_model():
    # per-example gradients of a softmax regression are skewed; their means become Gaussian (CLT)
    torch.manual_seed(0)
    model = nn.Linear(10, 3)
    x = torch.randn(256, 10) ** 3
    y = torch.randint(0, 3, (256,))
    small = N.sgn_gaussianity(model, x, y, batch_size=2, num_batches=300)
    large = N.sgn_gaussianity(model, x, y, batch_size=64, num_batches=300)
    assert large > small + 20


# =================================================================== trend checks (slow, mnist5k)
def small_cnn(convs: list[int], seed: int = 0, fc: int = 64) -> nn.Sequential:
    """CNN-3/4/5 of [000] scaled down for 28x28 digits: 3x3 convs + ReLU, 2x2 max-pooling after
    conv 1, 2 and the last conv (3x3 maps), then FC(fc) and a 10-way classifier."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    c_in = 1
    pool_after = {0, 1, len(convs) - 1}
    for i, c in enumerate(convs):
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU()]
        if i in pool_after:
            layers.append(nn.MaxPool2d(2))
        c_in = c
    layers += [nn.Flatten(), nn.Linear(c_in * 3 * 3, fc), nn.ReLU(), nn.Linear(fc, 10)]
    return nn.Sequential(*layers)


def train(model, ds, steps, batch=64, lr=0.01, tracker=None, seed=0):
    """[000]'s recipe (SGD, momentum 0.9, lr 0.01, batch 64) for ``steps`` steps."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(steps):
        idx = torch.randint(0, ds.train_x.shape[0], (batch,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(model(ds.train_x[idx]), ds.train_y[idx]).backward()
        if tracker is not None:
            tracker.update()
        opt.step()
    opt.zero_grad()
    return model


@pytest.fixture(scope="module")
def mnist5k():
    from nas.data import load_dataset

    return load_dataset("mnist5k")


@pytest.mark.slow
def test_trend_sgn_gaussianity_rises_from_batch_8_to_256(mnist5k):
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


@pytest.mark.slow
def test_trend_depth_profile_of_cnn_3_4_5(mnist5k):
    torch.set_num_threads(2)
    x0, y0 = mnist5k.train_x[:256], mnist5k.train_y[:256]
    rows = {}
    for name, convs in {"CNN-3": [8, 16, 32], "CNN-4": [8, 16, 32, 32], "CNN-5": [8, 16, 32, 32, 64]}.items():
        model = small_cnn(convs)
        at_init = N.grad_depth_trend(model, x0, y0)
        tracker = N.GradientStdTracker(model, order=N.layer_order(model, x0))
        train(model, mnist5k, steps=150, tracker=tracker)
        prof = tracker.norm_profile()
        rows[name] = (at_init, prof)
        assert prof.mean_trend is not None and len(prof.layers) == len(convs) + 2
        assert -1 <= prof.mean_trend.spearman <= 1 and math.isfinite(prof.mean_trend.log_slope)
        print(f"\n[000 trend] {name}: init rho {at_init:+.2f}; over 150 steps rho(mean norm) "
              f"{prof.mean_trend.spearman:+.2f}, log-slope {prof.mean_trend.log_slope:+.2f}, "
              f"rho(CV) {prof.cv_trend.spearman:+.2f}; mean norms "
              + " ".join(f"{v:.3g}" for v in prof.mean) + "; CV " + " ".join(f"{v:.2f}" for v in prof.cv)
              + "; early/late " + " ".join(f"{v:.2f}" for v in prof.ratio))
