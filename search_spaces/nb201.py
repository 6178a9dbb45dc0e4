"""NAS-Bench-201 cell space (Dong & Yang 2020, "NAS-Bench-201: Extending the Scope of Reproducible Neural
Architecture Search", ICLR, arXiv:2001.00326; NATS-Bench topology space, Dong et al. 2021, TPAMI).

A cell is a DAG on 4 nodes; each of the 6 edges ``j -> i`` (``j < i``) carries one of 5 ops, and node ``i``
is the sum of its incoming edges: 5^6 = 15,625 cells. Arch strings list the inputs of nodes 1, 2, 3::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

The macro skeleton follows the reference code (``TinyNetwork`` / ``InferCell`` / ``ResNetBasicblock`` of
D-X-Y/AutoDL-Projects): stem conv3x3 (16 channels) + BN; 3 stages of 5 cells at 16/32/64 channels joined
by residual reduction blocks (ReLU-Conv3x3(stride 2)-BN, ReLU-Conv3x3-BN, shortcut AvgPool2x2 + Conv1x1);
BN-ReLU, global average pooling, linear head. Conv ops are ReLU-Conv-BN; BN layers are affine.

Indices follow NAS-Bench-201 / NATS-Bench: all cells enumerated edge by edge (edge order of the string,
op order :data:`OPS`, first edge most significant), then shuffled with Python's Mersenne Twister seeded 88
(``generate_meta_info`` in AutoDL-Projects' ``exps/NAS-Bench-201/main.py``: ``random.seed(88);
random.shuffle(archs)``).
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from search_spaces._base import (
    ConfigError,
    Dimension,
    SearchSpace,
    conv_input_shape,
    integer,
    training_dimensions,
)
from search_spaces._registry import register_space

__all__ = [
    "EDGES",
    "NUM_ARCHS",
    "OPS",
    "NB201Network",
    "NB201Space",
    "arch_string",
    "arch_to_index",
    "index_to_arch",
    "parse_arch",
]

#: Candidate ops in NAS-Bench-201's order (``NAS_BENCH_201`` in the reference code).
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: Edges ``(source, target)`` in arch-string order: node 1 <- 0; node 2 <- 0, 1; node 3 <- 0, 1, 2.
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
#: Number of cells in the space, 5 ** 6.
NUM_ARCHS = len(OPS) ** len(EDGES)
#: Optuna parameter names of the edges, ``edge_<source><target>``.
EDGE_NAMES = tuple(f"edge_{s}{t}" for s, t in EDGES)
_SHUFFLE_SEED = 88


# -- arch strings and indices ------------------------------------------------------------------------
def arch_string(ops: Sequence[str]) -> str:
    """Arch string of the 6 edge ops given in :data:`EDGES` order."""
    ops = tuple(ops)
    if len(ops) != len(EDGES) or any(op not in OPS for op in ops):
        raise ValueError(f"expected {len(EDGES)} ops from {list(OPS)}; got {ops!r}")
    nodes, k = [], 0
    for target in (1, 2, 3):
        nodes.append("|" + "|".join(f"{ops[k + j]}~{j}" for j in range(target)) + "|")
        k += target
    return "+".join(nodes)


def parse_arch(arch: str) -> tuple[str, ...]:
    """The 6 edge ops (in :data:`EDGES` order) of an arch string; inverse of :func:`arch_string`.

    Raises:
        ValueError: malformed string (wrong node count, source order or op name).
    """
    if not isinstance(arch, str):
        raise ValueError(f"arch must be a string; got {type(arch).__name__}")
    nodes = arch.split("+")
    if len(nodes) != 3:
        raise ValueError(f"arch string needs 3 nodes separated by '+'; got {arch!r}")
    ops: list[str] = []
    for target, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")):
            raise ValueError(f"node {target} of {arch!r} must be enclosed in '|'")
        tokens = node[1:-1].split("|")
        if len(tokens) != target:
            raise ValueError(f"node {target} of {arch!r} needs {target} inputs; got {len(tokens)}")
        for source, token in enumerate(tokens):
            op, _, src = token.partition("~")
            if op not in OPS or src != str(source):
                raise ValueError(f"edge {source}->{target} of {arch!r} must be '<op>~{source}' with op in "
                                 f"{list(OPS)}; got {token!r}")
            ops.append(op)
    return tuple(ops)


@functools.lru_cache(maxsize=1)
def _index_tables() -> tuple[tuple[str, ...], dict[str, int]]:
    """All arch strings in NAS-Bench-201 index order, and the inverse map."""
    cells = [arch_string(ops) for ops in _product(len(EDGES))]
    # random.seed(88); random.shuffle(cells), written out (CPython's Fisher-Yates with _randbelow over
    # getrandbits) so the order does not depend on the shuffle implementation of a Python version.
    rng = random.Random(_SHUFFLE_SEED)
    for i in reversed(range(1, len(cells))):
        n = i + 1
        k = n.bit_length()
        j = rng.getrandbits(k)
        while j >= n:
            j = rng.getrandbits(k)
        cells[i], cells[j] = cells[j], cells[i]
    return tuple(cells), {s: i for i, s in enumerate(cells)}


def _product(n: int) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [()]
    for _ in range(n):
        out = [prefix + (op,) for prefix in out for op in OPS]
    return out


def index_to_arch(index: int) -> str:
    """Arch string of NAS-Bench-201 / NATS-Bench (topology) index ``index`` in ``[0, 15625)``."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < NUM_ARCHS:
        raise ValueError(f"index must be an int in [0, {NUM_ARCHS - 1}]; got {index!r}")
    return _index_tables()[0][index]


def arch_to_index(arch: str) -> int:
    """NAS-Bench-201 / NATS-Bench index of an arch string (inverse of :func:`index_to_arch`)."""
    parse_arch(arch)  # precise error for malformed strings
    return _index_tables()[1][arch]


# -- network -----------------------------------------------------------------------------------------
class ReLUConvBN(nn.Sequential):
    """``ReLU -> Conv2d(bias=False) -> BatchNorm2d`` (NAS-Bench-201's ``nor_conv`` ops)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, kernel_size, stride, padding, bias=False),
                         nn.BatchNorm2d(c_out))


class Zero(nn.Module):
    """The ``none`` op: ``x * 0`` (keeps the graph connected, as in the reference code)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def _make_op(op: str, channels: int) -> nn.Module:
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0)
    if op == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown op {op!r}; ops: {list(OPS)}")


class Cell(nn.Module):
    """A NAS-Bench-201 cell (``InferCell``): node ``i`` = sum over ``j < i`` of ``op_ji(node_j)``."""

    def __init__(self, ops: Sequence[str], channels: int) -> None:
        super().__init__()
        self.ops = tuple(ops)
        self.edges = nn.ModuleList(_make_op(op, channels) for op in self.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes, k = [x], 0
        for target in (1, 2, 3):
            nodes.append(sum(self.edges[k + j](nodes[j]) for j in range(target)))
            k += target
        return nodes[-1]


class ReductionBlock(nn.Module):
    """NAS-Bench-201's ``ResNetBasicblock`` with stride 2: ``ReLUConvBN3x3(s2) -> ReLUConvBN3x3`` plus the
    shortcut ``AvgPool2d(2, 2) -> Conv1x1``."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.downsample(x)


class NB201Network(nn.Module):
    """NAS-Bench-201 macro skeleton (``TinyNetwork``) around one cell type; PyTorch's default init.

    Args:
        arch: arch string.
        num_classes: outputs.
        in_channels: input image channels.
        channels: stem / first-stage channels (16 in the benchmark).
        cells: cells per stage (5 in the benchmark).
    """

    def __init__(self, arch: str, num_classes: int, in_channels: int = 3, channels: int = 16, cells: int = 5) -> None:
        super().__init__()
        ops = parse_arch(arch)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ReductionBlock(c, 2 * c))
                c *= 2
            layers += [Cell(ops, c) for _ in range(cells)]
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.lastact(self.cells(self.stem(x)))), 1))


# -- space -------------------------------------------------------------------------------------------
#: Default cell: NAS-Bench-201 index 6111, a best CIFAR-10 cell (94.37 % test accuracy after 200 epochs,
#: tied with index 13714, per ../shared/nb201/nats_bench.csv).
DEFAULT_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


@dataclasses.dataclass(frozen=True)
class ArchDimension(Dimension):
    """The ``arch`` field: an arch string, searched as 6 categorical edges (``edge_01`` ... ``edge_23``).

    ``edge_choices`` holds the allowed ops per edge (:data:`EDGES` order). Narrow with a list of ops (every
    edge restricted to them) or with one arch string (fixes the cell).
    """

    edge_choices: tuple[tuple[str, ...], ...] = (OPS,) * len(EDGES)

    def allowed(self) -> str:
        if all(c == OPS for c in self.edge_choices):
            return (f"an NB201 arch string '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' with each op in {list(OPS)}")
        per_edge = ", ".join(f"{s}->{t}: {list(c)}" for (s, t), c in zip(EDGES, self.edge_choices))
        return f"an NB201 arch string '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' with ops per edge {per_edge}"

    def check(self, value: Any, space: str = "") -> Any:
        try:
            ops = parse_arch(value)
        except ValueError:
            raise ConfigError(self.name, self.allowed(), value, space) from None
        if any(op not in allowed for op, allowed in zip(ops, self.edge_choices)):
            raise ConfigError(self.name, self.allowed(), value, space)
        return value

    def suggest(self, trial: Any) -> Any:
        if not self.sampled:
            return self.default
        return arch_string([trial.suggest_categorical(name, list(choices))
                            for name, choices in zip(EDGE_NAMES, self.edge_choices)])

    def narrow(self, bound: Any, space: str = "") -> Dimension:
        if isinstance(bound, str) and "|" in bound:
            edge_choices = tuple((op,) for op in parse_arch(self.check(bound, space)))
        else:
            wanted = (bound,) if isinstance(bound, str) else tuple(bound)
            bad = [op for op in wanted if op not in OPS]
            if bad or not wanted:
                raise ConfigError(self.name, f"an arch string or a non-empty subset of {list(OPS)}", bound, space)
            edge_choices = tuple(tuple(op for op in choices if op in wanted) for choices in self.edge_choices)
            if not all(edge_choices):
                raise ConfigError(self.name, f"ops allowed by the current bounds ({self.allowed()})", bound, space)
        default_ops = parse_arch(self.default)
        default = arch_string([op if op in c else c[0] for op, c in zip(default_ops, edge_choices)])
        return dataclasses.replace(self, edge_choices=edge_choices, default=default)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": "arch", "choices": list(OPS),
                "edges": {name: list(c) for name, c in zip(EDGE_NAMES, self.edge_choices)},
                "log": False, "default": self.default, "fixed": not self.sampled, "description": self.description}


@register_space("nb201")
class NB201Space(SearchSpace):
    """NAS-Bench-201 cell space: compare proxies with published numbers.

    Fields: ``arch`` (searched as 6 categorical edges ``edge_01, edge_02, edge_12, edge_03, edge_13,
    edge_23`` over :data:`OPS`), ``batch_size`` 32-512 (log), ``lr`` 1e-3-1 (log); fixed: ``channels`` 16,
    ``cells`` 5 per stage (the benchmark's skeleton), ``optimizer`` "sgd", ``momentum`` 0.9,
    ``weight_decay`` 5e-4. Defaults: the best CIFAR-10 cell (index 6111), batch 256, lr 0.1 (the
    benchmark's recipe). See :func:`index_to_arch` / :func:`arch_to_index` for benchmark indices.

    Narrow with e.g. ``get_space("nb201", arch=["nor_conv_3x3", "skip_connect"], channels=8, cells=1)``.
    """

    #: The network class :meth:`build` returns (its docstring: the building and initialization rules).
    model_class = NB201Network

    smoke_bounds = {"channels": 8, "cells": 1}

    @classmethod
    def _default_dimensions(cls) -> list[Dimension]:
        return [
            ArchDimension("arch", "arch", default=DEFAULT_ARCH, description="cell: one op per edge (6 edges)"),
            integer("channels", 1, 256, default=16, sampled=False, description="stage-1 channels (fixed)"),
            integer("cells", 1, 20, default=5, sampled=False, description="cells per stage (fixed)"),
            *training_dimensions(batch_size=256, lr=0.1),
        ]

    def _build(self, config: dict[str, Any], num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
        in_channels, _, _ = conv_input_shape(input_shape, self.name)
        return NB201Network(config["arch"], num_classes, in_channels, config["channels"], config["cells"])
