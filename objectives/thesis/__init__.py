"""The thesis's gradient metrics (J. Nelson, *Gradient Step-Consistency and Batch-Dissonance*, BYU 2022).

One file per registry key:

=====================  ==============================  =============================================
file                   function                        quantity
=====================  ==============================  =============================================
kappa_w.py             step_consistency                kappa_W, Def. 2.5 (eq. 2.24)
min_cosine.py          min_gradient_cosine             C*, Def. 4.1
weight_diversity.py    weight_gradient_diversity       D_n, Def. 4.1
weight_coherence.py    weight_gradient_coherence       H_n, Def. 4.1
kappa_x.py             batch_dissonance                kappa_X, Def. 3.4 (eqs. 3.15-3.16)
confusion.py           gradient_confusion              Def. 3.11 (Sankararaman et al. 2020)
diversity.py           gradient_diversity              Def. 3.12 (Yin et al. 2018)
coherence.py           gradient_coherence              Def. 3.13 (Chatterjee & Zielinski 2020)
rank_input.py          relative_gradient_rank          Def. 3.7 with h_X (Balduzzi et al. 2017)
rank_weight.py         relative_gradient_rank          Def. 3.7 with h_W
in_training.py         InTrainingStepConsistency       kappa_W of each real training step (Sec. 2.4)
=====================  ==============================  =============================================

``rank.py`` holds :func:`relative_gradient_rank` (both variants); ``_common.py`` the perturbed batch
gradients shared by kappa_w, min_cosine, weight_diversity and weight_coherence.
"""

from .coherence import gradient_coherence
from .confusion import gradient_confusion
from .diversity import gradient_diversity
from .grad_weight_ratio import grad_weight_ratio
from .in_training import InTrainingStepConsistency
from .kappa_w import step_consistency
from .kappa_x import batch_dissonance
from .min_cosine import min_gradient_cosine
from .rank import relative_gradient_rank
from .rank_input import _rank_input  # noqa: F401  (registers rank_input)
from .rank_weight import _rank_weight  # noqa: F401  (registers rank_weight)
from .weight_coherence import weight_gradient_coherence
from .weight_diversity import weight_gradient_diversity

__all__ = [
    "step_consistency", "min_gradient_cosine", "weight_gradient_diversity", "weight_gradient_coherence",
    "batch_dissonance", "gradient_confusion", "gradient_diversity", "gradient_coherence",
    "relative_gradient_rank", "grad_weight_ratio", "InTrainingStepConsistency",
]
