"""Your own model family as a define-by-run function (Optuna style), searched by gradnas.

    python -m nas spaces examples/my_space.py:space          # the dimensions gradnas found
    python -m nas score --space examples/my_space.py:space --dataset synthetic
    python -m nas search --space examples/my_space.py:space --dataset mnist5k --budget 5m

``space(trial)`` asks the trial for its architecture (``trial.suggest_*``) and returns the model. The config
gradnas stores is the parameters it suggested plus the training fields it did not (``batch_size``, ``lr``:
searched; ``optimizer``, ``momentum``, ``weight_decay``: fixed). Lazy layers infer their input sizes, so
the same function builds for 1x28x28 (MNIST) and 3x32x32 (CIFAR) images; gradnas materializes them with
one forward pass before anything else touches the model.
"""

from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


def space(trial, num_classes=10):
    """A small convnet: depth conv-BN-act-pool blocks doubling the width, global pooling, a linear head."""
    depth = trial.suggest_int("depth", 1, 3)
    width = trial.suggest_int("width", 8, 32, log=True)
    act = ACTIVATIONS[trial.suggest_categorical("activation", ["relu", "gelu", "silu"])]
    layers = []
    for i in range(depth):
        layers += [nn.LazyConv2d(width * 2**i, 3, padding=1, bias=False), nn.LazyBatchNorm2d(), act(),
                   nn.MaxPool2d(2)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LazyLinear(num_classes)]
    return nn.Sequential(*layers)
