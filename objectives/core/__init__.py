"""The machinery the metrics share: a probe, per-example gradients, BatchNorm modes, hooks, vector math.

* :mod:`~objectives.core.probe`: :class:`Probe`, one model + one batch with every shared gradient
  computed once and cached; ``PROBE_OPTIONS``.
* :mod:`~objectives.core.gradients`: per-example weight gradients (``torch.func``), contributions to the
  train-mode gradient, batch and input gradients.
* :mod:`~objectives.core.batch_norm`: ``bn_mode="frozen"``: batch statistics as a fixed affine map.
* :mod:`~objectives.core.params`: flattening and the random parameter masks of thesis Sec. 1.6.
* :mod:`~objectives.core.hooks`: hooks removed in ``finally``, restored train/eval flags, functional
  calls on cloned buffers: the model is always left as found.
* :mod:`~objectives.core.rng`: :func:`seeded`, the caller's global RNG forked and seeded around every
  metric (train-mode dropout and a layer's own ``torch.rand`` cannot make values differ between calls).
* :mod:`~objectives.core.vectors`, :mod:`~objectives.core.linalg`: cosines, diversity, coherence,
  confusion; stable rank and its Gaussian reference.
"""

from .batch_norm import BN_MODES, collect_batch_norm_stats, frozen_buffers, probing_mode
from .gradients import batch_grad, input_grads, per_example_contributions, per_example_grads
from .hooks import cloned_buffers, eval_mode, functional_forward, hooked, restored_training, trainable_parameters
from .linalg import gaussian_stable_rank, stable_rank, wishart_gram
from .params import apply_mask, flatten, make_mask, random_subset
from .probe import PROBE_OPTIONS, Probe, get_probe
from .rng import seed_of, seeded

__all__ = [
    "Probe", "PROBE_OPTIONS", "get_probe", "BN_MODES", "probing_mode", "collect_batch_norm_stats",
    "frozen_buffers", "per_example_grads", "per_example_contributions", "batch_grad", "input_grads",
    "hooked", "restored_training", "eval_mode", "cloned_buffers", "functional_forward",
    "trainable_parameters", "flatten", "make_mask", "apply_mask", "random_subset", "stable_rank",
    "gaussian_stable_rank", "wishart_gram", "seeded", "seed_of",
]
