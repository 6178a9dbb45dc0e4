"""Search spaces: turn an Optuna trial into a config and a config into a network.

Public entry points (modelled on timm's ``list_models`` / ``create_model``)::

    from search_spaces import get_space, list_spaces

    list_spaces()                         # ['mlp_looks_linear', 'nb201', 'resnet_cifar', 'vgg']
    space = get_space("resnet_cifar", width=(8, 16), blocks=(1, 2))   # narrowed bounds (optional)
    config = space.sample(trial)          # define-by-run: trial.suggest_* only
    model = space.build(config, num_classes=10, input_shape=(3, 32, 32), seed=0)
    space.dimensions()                    # what ``gradnas spaces`` prints

    # a space from your code: a define-by-run function, a SearchSpace subclass or instance
    space = get_space("examples/my_space.py:space", lr=(0.01, 0.1))   # or "package.module:attr"
    space.ref                             # what rebuilds it in another process: get_space(space.ref, **space.bounds)

Importing this package registers the built-in spaces; it is the only module that imports them.
"""

from search_spaces._base import (GRAD_TRANSFORMS, ConfigError, Dimension, SearchSpace, categorical, integer, real,
                                 training_dimensions)
from search_spaces._errors import SpaceError
from search_spaces._refs import resolve_space_ref
from search_spaces._registry import UnknownSpaceError, get_space, list_spaces, register_space

# registration side effects: each module decorates its space with @register_space
from search_spaces import mlp_looks_linear as _mlp_looks_linear  # noqa: E402,F401  isort: skip
from search_spaces import nb201 as _nb201  # noqa: E402,F401  isort: skip
from search_spaces import resnet_cifar as _resnet_cifar  # noqa: E402,F401  isort: skip
from search_spaces import vgg as _vgg  # noqa: E402,F401  isort: skip

__all__ = [
    "GRAD_TRANSFORMS",
    "ConfigError",
    "Dimension",
    "SearchSpace",
    "SpaceError",
    "UnknownSpaceError",
    "categorical",
    "get_space",
    "integer",
    "list_spaces",
    "real",
    "register_space",
    "resolve_space_ref",
    "training_dimensions",
]
