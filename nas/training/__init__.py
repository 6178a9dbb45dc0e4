"""Training code of the search and the validation: the one optimizer recipe, gradient transforms, full training.

* :mod:`~nas.training.recipe` — :func:`make_optimizer` (SGD with Nesterov momentum and the config's
  gradient transform, shared by the early steps, validation and ``diagnose``), :func:`resolve_device`,
  :func:`jsonable`;
* :mod:`~nas.training.grad_transforms` — GAN, gradient centralization, z-score and the optimizer
  wrapper that applies them (:func:`make_grad_transform`, :data:`GRAD_TRANSFORMS`);
* :mod:`~nas.training.train` — :func:`train`, the resumable full training of one candidate
  (:class:`TrainSpec`, :func:`warmup_cosine`, checkpoints);
* :mod:`~nas.training.summary` — :func:`summarize`, a training history as the stored ``val_*`` values.

The submodule ``nas.training.train`` is shadowed by the function of the same name here; reach the
module with ``importlib.import_module("nas.training.train")``.
"""

from .grad_transforms import (
    GRAD_TRANSFORMS,
    AutoscaledNormalization,
    GradientAutoscaledNormalization,
    GradientCentralization,
    GradientTransform,
    TransformedOptimizer,
    ZScoreNormalization,
    make_grad_transform,
)
from .recipe import jsonable, make_optimizer, resolve_device
from .summary import CONVERGED_FRACTION, summarize
from .train import CHECKPOINT_FORMAT, TrainSpec, load_checkpoint, train, warmup_cosine

__all__ = [
    "TrainSpec", "train", "warmup_cosine", "load_checkpoint", "CHECKPOINT_FORMAT", "summarize", "CONVERGED_FRACTION",
    "make_optimizer", "resolve_device", "jsonable",
    "make_grad_transform", "GRAD_TRANSFORMS", "GradientTransform", "AutoscaledNormalization",
    "GradientCentralization", "ZScoreNormalization", "TransformedOptimizer", "GradientAutoscaledNormalization",
]
