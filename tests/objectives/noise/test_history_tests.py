"""[001]'s dimension- and iteration-wise tests: normality-test calibration on Gaussian and Cauchy
samples, dead (constant) vectors counted apart."""

from __future__ import annotations

import numpy as np
import pytest

from objectives import noise as N


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


def test_constant_parameters_are_dead_not_tested():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((200, 50))
    x[:, 7] = 0.0  # a dead ReLU unit: its gradient is a point mass
    x[:, 9] = 0.25
    tests = N.gradient_history_tests(x, k=200)
    assert tests.iteration.dead == 2 and tests.iteration.tested == 48
