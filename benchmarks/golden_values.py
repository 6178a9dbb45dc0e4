"""Golden values: every registered metric on fixed models, seeds and both BN modes, for refactorings.

A behaviour-preserving change (a move, a split, shared plumbing) must leave every value bit-identical.
Record before the change, check after::

    python benchmarks/golden_values.py --out runs/golden/before.json
    # ... refactor ...
    python benchmarks/golden_values.py --check runs/golden/before.json

What is recorded: for each of three small models (a BatchNorm ResNet of ``resnet_cifar``, a GroupNorm
plain one with CReLU, a BatchNorm ReLU MLP of ``mlp_looks_linear``), each BN mode (``frozen``,
``contribution``) and two seeds, the value of every registered metric, each scored alone through
``objectives.score`` on a seeded synthetic batch (one torch thread, so the values are deterministic), or
its error message; and the text of ``python -m nas objectives``. ``--check`` prints every difference
and exits 1 if there is one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

try:
    import objectives  # noqa: F401
except ImportError:  # run from a checkout without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from objectives import registry, score
from search_spaces import get_space

MODELS = {
    "resnet_bn": ("resnet_cifar", {"blocks": 1, "width": 8, "skip": True, "norm": "bn", "activation": "relu"},
                  (3, 16, 16)),
    "plain_gn_crelu": ("resnet_cifar", {"blocks": 1, "width": 8, "skip": False, "norm": "gn",
                                        "activation": "crelu"}, (3, 16, 16)),
    "mlp_bn_relu": ("mlp_looks_linear", {"depth": 3, "width": 32, "norm": "bn", "activation": "relu",
                                        "init": "orthogonal"}, (1, 8, 8)),
}
SEEDS = (0, 1)
BN_MODES = ("frozen", "contribution")


def _batch(shape: tuple[int, ...], seed: int, n: int = 16, classes: int = 10):
    g = torch.Generator().manual_seed(1000 + seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)


def record() -> dict[str, object]:
    torch.set_num_threads(1)
    values: dict[str, object] = {}
    for label, (space_name, overrides, shape) in MODELS.items():
        space = get_space(space_name)
        config = space.validate({**space.default_config(), **overrides})
        for seed in SEEDS:
            model = space.build(config, 10, shape, seed=seed)
            x, y = _batch(shape, seed)
            for bn_mode in BN_MODES:
                for name in registry.names():
                    key = f"{label}/seed{seed}/{bn_mode}/{name}"
                    opts = {"seed": seed}
                    if "group_size" in registry.get(name).options:
                        opts["group_size"] = 4
                    if "probe" in registry.get(name).options:
                        opts["bn_mode"] = bn_mode
                    try:
                        values[key] = repr(score(model, x, y, metrics=[name], **opts)[name])
                    except Exception as exc:  # noqa: BLE001 - an error is a value too
                        values[key] = f"error {type(exc).__name__}: {exc}"
    listing = subprocess.run([sys.executable, "-m", "nas", "objectives"], capture_output=True, text=True)
    values["cli/objectives"] = listing.stdout
    return values


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--out", help="write the values (JSON)")
    g.add_argument("--check", help="compare with values written before; exit 1 on any difference")
    args = p.parse_args(argv)
    values = record()
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(values, indent=1, sort_keys=True))
        print(f"{len(values)} values written to {args.out}")
        return 0
    before = json.loads(Path(args.check).read_text())
    diffs = [k for k in sorted(set(before) | set(values)) if before.get(k) != values.get(k)]
    for k in diffs:
        print(f"DIFF {k}:\n  before: {before.get(k)!r}\n  after:  {values.get(k)!r}")
    print(f"{len(values)} values, {len(diffs)} difference(s)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
