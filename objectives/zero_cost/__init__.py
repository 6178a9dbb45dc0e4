"""Peer zero-cost proxies, one file per registry key; larger is better for all of them (``maximize``).

* ``grad_norm.py``: ``sum_l ||dL/dW_l||_F`` (Abdelfattah et al., ICLR 2021).
* ``snip.py``: connection sensitivity ``sum |W ⊙ dL/dW|`` (Lee et al., ICLR 2019).
* ``grasp.py``: gradient signal preservation ``-sum θ ⊙ Hg`` (Wang et al., ICLR 2020).
* ``fisher.py``: fan-in weighted channel Fisher information of the layer outputs (Theis et al. 2018).
* ``synflow.py``: log synaptic flow of the linearized network, data-free (Tanaka et al., NeurIPS 2020).
* ``jacob_cov.py``: eigenvalue score of the input-Jacobian correlation (Mellor et al., arXiv v1, 2020).
* ``naswot.py``: ``log |det K_H|`` of the Hamming kernel of binary ReLU codes (Mellor et al., ICML 2021).
* ``zico.py``: summed log inverse coefficient of variation of chunk gradients (Li et al., ICLR 2023).
* ``az_expressivity.py``, ``az_progressivity.py``, ``az_trainability.py``: three components of AZ-NAS
  (Lee & Ham, CVPR 2024), data-free: the summed spectral entropy of the stage features, its smallest
  stage-to-stage gain, and the closeness to 1 of the block Jacobians' spectral norms (the fourth
  component, complexity, is ``flops``). ``_az_nas.py`` (private) finds the stage features in any model.
* ``meco.py``: summed minimum eigenvalue of the channel correlation of every module's output on one
  example, data-free (Jiang et al., NeurIPS 2023).
* ``params.py``: number of trainable parameters (size baseline).
* ``flops.py``: forward FLOPs per example (compute baseline).
* ``_harness.py`` (private): the scored layers (``nn.Linear`` and convolutions, each weight once) and the
  functional evaluation every proxy uses.

Definitions follow the reference implementations the NAS literature reports numbers for
(SamsungLabs/zero-cost-nas for the first six, Mellor et al.'s for naswot, SLDGroup/ZiCo for zico,
cvlab-yonsei/AZ-NAS for the az_* components, HamsterMimi/MeCo for meco). Every function has the registry
signature ``(model, inputs, targets, loss_fn=F.cross_entropy, *, <options>) -> float``.

How the caller's model is left untouched (unlike the references, which patch ``forward`` and mutate the net):

* every forward pass goes through :func:`torch.func.functional_call` with detached parameters and *cloned*
  buffers, so BatchNorm running statistics (and ``num_batches_tracked``) are updated on the clones only;
* gradients are taken with :func:`torch.autograd.grad` with respect to fresh leaves, so no parameter's
  ``.grad`` and no ``requires_grad`` flag is touched;
* activations are observed through forward hooks whose handles are removed in ``finally``;
* only :func:`synflow` (eval mode) and the ``az_*`` components (train mode, as AZ-NAS's ``model.train()``)
  change train/eval mode; they restore every module's flag.

The other proxies evaluate the model in the train/eval mode it is given (the references score freshly
built nets, i.e. train mode: BatchNorm normalizes with batch statistics). The module names
``objectives.zero_cost.<key>`` are shadowed by the functions re-exported here; reach a file's module through
``importlib.import_module("objectives.zero_cost.<key>")``.
"""

from __future__ import annotations

from ._harness import LAYER_TYPES, LossFn  # noqa: F401 - public names of the former module
from .az_expressivity import az_expressivity
from .az_progressivity import az_progressivity
from .az_trainability import az_trainability
from .fisher import fisher
from .flops import flops
from .grad_norm import grad_norm
from .grasp import grasp
from .jacob_cov import JACOB_COV_K, jacob_cov  # noqa: F401
from .meco import meco
from .naswot import NASWOT_SINGULAR, naswot  # noqa: F401
from .params import params
from .snip import snip
from .synflow import synflow
from .zico import zico

__all__ = [
    "az_expressivity",
    "az_progressivity",
    "az_trainability",
    "fisher",
    "flops",
    "grad_norm",
    "grasp",
    "jacob_cov",
    "meco",
    "naswot",
    "params",
    "snip",
    "synflow",
    "zico",
]
