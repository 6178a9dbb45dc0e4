"""The registered protocols, one per claim (see ``python -m nas reproduce --help`` for the list).

Per-seed protocols measure one value per independently seeded network and bootstrap the mean over
seeds; population protocols (the thesis's claims about which networks train) measure a sample of
``resnet_cifar`` configs (the CPU bounds), each scored at initialization and trained, and bootstrap
over configs. Sizes are small with ``--quick`` (every claim on 2 CPU cores in minutes) and larger
otherwise. Papers: 000 Roy & Roy (layer-dependent gradient noise), 001 Xie et al. (overlooked
structure of stochastic gradients), 002 Yun (gradient autoscaled normalization), 003 Wu et al.
(characteristics of SGN), 004 Nelson's thesis (step-consistency and batch-dissonance).

One module per paper (``p000`` ... ``p004``); importing this package registers every claim in registry
order; ``_common`` holds what several papers share.
"""

from . import p000, p001, p002, p003, p004  # noqa: F401 - registers the claims in this order

__all__ = ["p000", "p001", "p002", "p003", "p004"]
