"""Gradient-noise statistics: layer norm profiles, cross-seed alignment, covariance spectra, power laws,
Gaussianity of the stochastic-gradient noise (SGN), Berry-Esseen bounds, gradient-std tracking.

Sources (procedures, numbers and their inconsistencies: ``papers/notes-000-002.md`` and
``papers/notes-001-003.md`` of the project):

* [000] M. Roy, S. Roy, "Layer-Dependent Structure in Gradient Noise of Small Convolutional Networks".
* [001] Z. Xie, Q.-Y. Tang, M. Sun, P. Li, "On the Overlooked Structure of Stochastic Gradients".
* [002] V.-D. Yun, "Insights from Gradient Dynamics: Gradient Autoscaled Normalization", arXiv:2509.03677.
* [003] Y. Wu, R. Luo, C. Zhang, J. Wang, Y. Yang, "Revisiting the Characteristics of Stochastic
  Gradient Noise and Dynamics".

========================  ==========================================================================
file                      contents
========================  ==========================================================================
``collect.py``            layers in depth order, minibatch gradients at fixed weights, random batches,
                          the gradient history matrix of [001]
``norms.py``              [000] per-layer norm profile (mean, std, CV, early/late) and depth trend
``alignment.py``          [000] cross-seed directional alignment, chance cosine
``spectrum.py``           [000]/[001] covariance spectra (Gram trick), power-law MLE + KS, lognormal test
``history_tests.py``      [001] dimension- and iteration-wise power-law and Gaussian rates
``gaussianity.py``        [003] Shapiro-Wilk Gaussianity percentage, Berry-Esseen bound
``std_tracker.py``        [002] global gradient std s_t, per-layer std and norm over training
``grad_norm_cv.py``       registered metric ``grad_norm_cv`` ([000])
``grad_depth_trend.py``   registered metric ``grad_depth_trend`` ([000])
``sgn_gaussianity.py``    registered metric ``sgn_gaussianity`` ([003])
``sgn_berry_esseen.py``   registered metric ``sgn_berry_esseen`` ([003])
``spectrum_s.py``         registered metric ``spectrum_s`` ([001])
``spectrum_ks.py``        registered metric ``spectrum_ks`` ([001])
``_common.py``            private: citations, layer eligibility, random column subsets
``_probe.py``             private: the metrics' layers, sampled weights and spectrum of a probe
========================  ==========================================================================

Vocabulary. A *layer* is one trainable parameter tensor (by default only tensors with ``ndim > 1``:
conv and linear weights, ``weights_only=True``). Its *depth* is the order in which the module that owns
it first runs in a forward pass (:func:`layer_order`). A *minibatch gradient* is the gradient of the
mean loss over a batch with BatchNorm in train mode (batch statistics, as in SGD; running buffers are
cloned, so untouched) and dropout off. The *SGN* of a weight is the spread of its minibatch gradients
across batches at fixed weights (iteration-wise, [001]); the spread of one gradient across parameters
(dimension-wise) is a different thing that [001] shows is heavy-tailed even when the SGN is Gaussian.

Everything here is a pure function of tensors or of ``(model, batches)``: no files, no plotting; the
model is evaluated through ``torch.func.functional_call`` and left bit-identical. The registered
metrics give one number each on the probe batch; the other functions return dataclasses for the
``diagnose`` command.
"""

from __future__ import annotations

from .alignment import AlignmentResult, chance_cosine, cross_seed_alignment
from .collect import Batch  # noqa: F401 - the (inputs, targets) alias, as before the split
from .collect import GradientHistory, gradient_history, layer_gradients, layer_order, random_batches
from .gaussianity import (
    BERRY_ESSEEN_A0,
    BerryEsseenResult,
    GaussianityProfile,
    GaussianityResult,
    berry_esseen_profile,
    sgn_gaussianity_profile,
)
from .history_tests import AxisTests, HistoryTests, gradient_history_tests
from .norms import DepthTrend, NormProfile, depth_trend, layer_norm_profile
from .spectrum import PowerLawFit, Spectrum, covariance_spectrum, fit_power_law, gram_eigenvalues, layer_spectra
from .std_tracker import GradientStdTracker, eligible_grads, global_gradient_std

# registered metrics, one file each (importing them registers them)
from .grad_norm_cv import grad_norm_cv  # isort: skip
from .grad_depth_trend import grad_depth_trend  # isort: skip
from .sgn_gaussianity import sgn_gaussianity  # isort: skip
from .sgn_berry_esseen import sgn_berry_esseen  # isort: skip
from .spectrum_s import spectrum_s  # isort: skip
from .spectrum_ks import spectrum_ks  # isort: skip

__all__ = [
    # data collection
    "layer_order",
    "layer_gradients",
    "random_batches",
    "GradientHistory",
    "gradient_history",
    # [000] norms and depth
    "DepthTrend",
    "depth_trend",
    "NormProfile",
    "layer_norm_profile",
    # [000] cross-seed alignment
    "chance_cosine",
    "AlignmentResult",
    "cross_seed_alignment",
    # [000]/[001] spectra and power laws
    "gram_eigenvalues",
    "PowerLawFit",
    "fit_power_law",
    "Spectrum",
    "covariance_spectrum",
    "layer_spectra",
    # [001] history-matrix tests
    "AxisTests",
    "HistoryTests",
    "gradient_history_tests",
    # [003] Gaussianity and Berry-Esseen
    "GaussianityResult",
    "GaussianityProfile",
    "sgn_gaussianity_profile",
    "BERRY_ESSEEN_A0",
    "BerryEsseenResult",
    "berry_esseen_profile",
    # [002] tracking
    "GradientStdTracker",
    "global_gradient_std",
    "eligible_grads",
    # registered metrics
    "grad_norm_cv",
    "grad_depth_trend",
    "sgn_gaussianity",
    "sgn_berry_esseen",
    "spectrum_s",
    "spectrum_ks",
]
