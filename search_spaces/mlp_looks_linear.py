"""Deep fully connected networks with orthogonal or looks-linear initialization.

The thesis's deep fully connected experiments (Nelson 2022, Def. 3.8-3.9 and Fig. 3.11: a 40-layer
looks-linear CReLU net trains with BatchNorm) and Balduzzi et al. 2017 (arXiv:1702.08591, Sec. 5: 200-layer
looks-linear nets train like ResNets). The input is flattened.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from search_spaces._base import ConfigError, Dimension, SearchSpace, categorical, integer, training_dimensions
from search_spaces._registry import register_space
from search_spaces.layers import ACTIVATIONS, activation_width, looks_linear_, make_activation, make_norm

__all__ = ["MLP", "MLPLooksLinearSpace"]

INITS = ("orthogonal", "looks_linear")


class MLP(nn.Module):
    """``Flatten -> [Linear -> norm -> act] x (depth - 1) -> Linear``: ``depth`` linear layers in all.

    Initialization (biases zero; ``W`` orthogonal, ``nn.init.orthogonal_``):
        * ``orthogonal``: every weight orthogonal. Gain 1 for the first layer (raw input) and after
          CReLU (``||CReLU(x)|| = ||x||``); gain sqrt(2) after ReLU (Saxe et al. 2014, He et al. 2015).
        * ``looks_linear`` (CReLU only): the first layer orthogonal, every later layer ``[W, -W]``
          (:func:`~search_spaces.layers.looks_linear_`), so without normalization the network computes
          the linear map ``W_depth ... W_1 x`` exactly at initialization.

    Args:
        in_features: size of the flattened input.
        depth: number of linear layers (>= 2).
        width: units of each hidden layer (before a CReLU doubles them).
        activation: ``"relu" | "crelu"``.
        init: ``"orthogonal" | "looks_linear"``.
        norm: ``"bn" | "none"`` (BatchNorm1d after each hidden linear layer, before the activation).
        num_classes: outputs.
    """

    def __init__(self, in_features: int, depth: int, width: int, activation: str, init: str, norm: str,
                 num_classes: int) -> None:
        super().__init__()
        if init == "looks_linear" and activation != "crelu":
            raise ValueError("looks_linear initialization requires the crelu activation")
        m = activation_width(activation)
        layers: list[nn.Module] = [nn.Flatten()]
        fan_in = in_features
        for _ in range(depth - 1):
            layers += [nn.Linear(fan_in, width), make_norm(norm, width, dim=1), make_activation(activation)]
            fan_in = m * width
        layers.append(nn.Linear(fan_in, num_classes))
        self.layers = nn.Sequential(*layers)
        self._init(activation, init)

    @torch.no_grad()
    def _init(self, activation: str, init: str) -> None:
        linears = [m for m in self.layers if isinstance(m, nn.Linear)]
        for i, layer in enumerate(linears):
            if i == 0:
                nn.init.orthogonal_(layer.weight)
            elif init == "looks_linear":
                looks_linear_(layer.weight)
            else:
                nn.init.orthogonal_(layer.weight, gain=math.sqrt(2.0) if activation == "relu" else 1.0)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@register_space("mlp_looks_linear")
class MLPLooksLinearSpace(SearchSpace):
    """Deep fully connected space.

    Fields (searched): ``depth`` 2-200 linear layers (log), ``width`` 32-1024 (log), ``activation``
    relu | crelu, ``init`` orthogonal | looks_linear (asked only when the activation is crelu; with relu
    it is "orthogonal"), ``norm`` bn | none, ``batch_size`` 32-512 (log), ``lr`` 1e-3-1 (log). Fixed:
    ``optimizer`` "sgd", ``momentum`` 0.9, ``weight_decay`` 5e-4. Defaults: a 10-layer, 256-wide
    looks-linear CReLU net without normalization.

    Rule: ``init="looks_linear"`` requires ``activation="crelu"`` (:class:`ConfigError` otherwise).
    """

    #: The network class :meth:`build` returns (its docstring: the building and initialization rules).
    model_class = MLP

    smoke_bounds = {"depth": (2, 12), "width": (32, 64)}

    @classmethod
    def _default_dimensions(cls) -> list[Dimension]:
        return [
            integer("depth", 2, 200, default=10, log=True, description="number of linear layers"),
            integer("width", 32, 1024, default=256, log=True, description="hidden units per layer"),
            categorical("activation", ACTIVATIONS, default="crelu", description="relu or crelu (doubles units)"),
            categorical("init", INITS, default="looks_linear",
                        description="orthogonal, or looks_linear ([W, -W] after CReLU; crelu only)"),
            categorical("norm", ("bn", "none"), default="none", description="BatchNorm1d after hidden layers"),
            *training_dimensions(batch_size=128, lr=0.01),
        ]

    def _check(self, config: dict[str, Any]) -> None:
        if config["init"] == "looks_linear" and config["activation"] != "crelu":
            raise ConfigError("init", "'orthogonal' when activation is 'relu' ('looks_linear' needs 'crelu')",
                              config["init"], self.name)

    def _check_bounds(self) -> None:
        # narrowing ``init`` to looks_linear implies the crelu activation
        if "orthogonal" not in self._dims["init"].choices:
            if "crelu" not in self._dims["activation"].choices:
                raise ConfigError("init", "a set containing 'orthogonal' when activation is limited to 'relu'",
                                  list(self._dims["init"].choices), self.name)
            self._dims["activation"] = self._dims["activation"].narrow("crelu", self.name)

    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """As :meth:`SearchSpace.validate`; a missing ``init`` defaults to "orthogonal" under relu."""
        if (isinstance(config, Mapping) and "init" not in config
                and config.get("activation", self._dims["activation"].default) == "relu"):
            config = {**config, "init": "orthogonal"}
        return super().validate(config)

    def sample(self, trial: Any) -> dict[str, Any]:
        """Draw a config; ``init`` is a conditional parameter, asked only when ``activation`` is crelu."""
        config = {}
        for name, dim in self._dims.items():
            if name == "init":
                config[name] = dim.suggest(trial) if config["activation"] == "crelu" else "orthogonal"
            else:
                config[name] = dim.suggest(trial)
        return self.validate(config)

    def _build(self, config: dict[str, Any], num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
        return MLP(math.prod(input_shape), config["depth"], config["width"], config["activation"], config["init"],
                   config["norm"], num_classes)
