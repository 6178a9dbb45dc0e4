"""How much a ranking by the combined gradnas score moves across seeds (issue 26 item 5).

For each seed s of ``--seeds``: every model is built from seed s (its initialization), the probe batch is
drawn from seed s, the combined score's init metrics are computed with ``objectives.score(..., seed=s)``
and the models are ranked by ``objectives.combined_score(table, phase="init")``. Printed: Kendall tau
between the rankings of every pair of seeds (mean and min over the pairs), and the tau between two runs of
the *same* seed, the second with the global RNG moved between building each model and scoring it (1.0 and
identical values when the score is deterministic).

Two populations:

* ``torchvision``: the four models of the library example (docs/library.md, "Rank models with the combined
  score": resnet18, vgg11_bn, mobilenet_v3_small, shufflenet_v2_x0_5), 32 x 32 Gaussian inputs,
  ``--classes`` classes, a batch of ``--batch`` random labels, lr 0.05 and batch size 128 for every model;
* ``lab``: ``--configs`` configs of the resnet lab's population (the first rows of
  ``benchmarks/tables/resnet_mnist5k.csv.gz``: resnet_cifar, blocks 1-2, width 8-16, each with its own lr
  and batch size), probe batch of 64 mnist5k training images drawn with the seed.

Usage (about 10 minutes on a loaded 2-core CPU, one thread)::

    nice python benchmarks/seed_stability.py [--population torchvision lab] [--seeds 10] [--threads 1]

``--same-seed-only`` runs only the repeat of seed 0 (the determinism check, e.g. against an older
checkout: ``PYTHONPATH=/path/to/old python benchmarks/seed_stability.py --same-seed-only``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

if __package__ in (None, ""):  # run as a script: the repository on the path (after any PYTHONPATH)
    sys.path.append(str(Path(__file__).resolve().parents[1]))

import objectives  # noqa: E402
from objectives import combined_score, registry, score  # noqa: E402
from objectives.combine import CONFIG_COLUMNS, INIT_FEATURES, feature_inputs  # noqa: E402

TORCHVISION_MODELS = ("resnet18", "vgg11_bn", "mobilenet_v3_small", "shufflenet_v2_x0_5")
LAB_TABLE = Path(__file__).resolve().parent / "tables" / "resnet_mnist5k.csv.gz"


def init_metrics() -> list[str]:
    """The registered metrics the combined init score reads."""
    names = set(registry.names())
    return [k for k in feature_inputs(INIT_FEATURES) if k in names]


def torchvision_table(seed: int, classes: int, batch: int, disturb: bool = False) -> pd.DataFrame:
    import torchvision

    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(batch, 3, 32, 32, generator=g), torch.randint(0, classes, (batch,), generator=g)
    rows = {}
    for name in TORCHVISION_MODELS:
        torch.manual_seed(seed)  # the model's initialization
        model = getattr(torchvision.models, name)(num_classes=classes)
        if disturb:  # a caller whose global RNG moved between building and scoring
            torch.rand(seed + 1)
        rows[name] = score(model, x, y, metrics=init_metrics(), seed=seed)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table["lr"], table["batch_size"] = 0.05, 128
    return table


def lab_configs(n: int) -> list[dict]:
    df = pd.read_csv(LAB_TABLE).sort_values("index").head(n)
    return [json.loads(c) for c in df["config"]]


def lab_table(seed: int, n: int, batch: int = 64, disturb: bool = False) -> pd.DataFrame:
    from nas.data import load_dataset
    from search_spaces import get_space

    data = load_dataset("mnist5k")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(data.train_x.shape[0], generator=g)[:batch]
    x, y = data.train_x[idx].float(), data.train_y[idx]
    space = get_space("resnet_cifar")
    rows = []
    for config in lab_configs(n):
        model = space.build(config, data.num_classes, tuple(x.shape[1:]), seed=seed)
        if disturb:
            torch.rand(seed + 1)
        values = dict(score(model, x, y, metrics=init_metrics(), seed=seed))
        values.update({k: config[k] for k in CONFIG_COLUMNS if k in config})
        rows.append(values)
    return pd.DataFrame(rows)


def ranking(table: pd.DataFrame) -> np.ndarray:
    return combined_score(table, phase="init")


def pairwise_tau(scores: list[np.ndarray]) -> list[float]:
    return [float(stats.kendalltau(a, b).statistic) for a, b in itertools.combinations(scores, 2)]


def run(population: str, seeds: int, same_seed_only: bool, classes: int, batch: int, configs: int) -> None:
    make = (lambda s, d=False: torchvision_table(s, classes, batch, d)) if population == "torchvision" else (
        lambda s, d=False: lab_table(s, configs, disturb=d))
    t0 = time.perf_counter()
    first = make(0)
    again = make(0, True)  # the global RNG moved before each score: a deterministic score does not notice
    same = float(stats.kendalltau(ranking(first), ranking(again)).statistic)
    identical = first.equals(again)
    print(f"{population}: seed 0 twice: tau {same:.3f}, every value identical: {identical} "
          f"({time.perf_counter() - t0:.0f} s)")
    if same_seed_only:
        return
    tables = [first] + [make(s) for s in range(1, seeds)]
    scores = [ranking(t) for t in tables]
    taus = pairwise_tau(scores)
    print(f"{population}: {seeds} seeds, {len(taus)} pairs: Kendall tau mean {np.mean(taus):.3f}, "
          f"min {np.min(taus):.3f}, max {np.max(taus):.3f} ({len(tables[0])} models, "
          f"{time.perf_counter() - t0:.0f} s)")
    if population == "torchvision":
        order = pd.DataFrame({s: pd.Series(sc, index=tables[0].index).rank(ascending=False).astype(int)
                              for s, sc in enumerate(scores)})
        print("rank of each model per seed (1 = predicted best):")
        print(order.to_string())
    else:
        top = [int(np.argmax(sc)) for sc in scores]
        print(f"{population}: predicted best config per seed (row of the table): {top}")
    for key in init_metrics():
        per_seed = [pairwise_tau([t[key].to_numpy(dtype=float) for t in tables])]
        print(f"  {key:18s} alone: tau across seeds mean {np.nanmean(per_seed):.3f}, min {np.nanmin(per_seed):.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--population", nargs="+", choices=["torchvision", "lab"], default=["torchvision", "lab"])
    ap.add_argument("--seeds", type=int, default=10, help="number of seeds (default 10)")
    ap.add_argument("--classes", type=int, default=4, help="torchvision models' classes (default 4)")
    ap.add_argument("--batch", type=int, default=16, help="torchvision probe batch (default 16)")
    ap.add_argument("--configs", type=int, default=20, help="lab configs (default 20)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--same-seed-only", action="store_true", help="only the repeat of seed 0")
    args = ap.parse_args(argv)
    if args.seeds < 2:
        ap.error("--seeds must be at least 2")
    torch.set_num_threads(args.threads)
    print(f"objectives from {Path(objectives.__file__).parent}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s); init metrics: {', '.join(init_metrics())}")
    for population in args.population:
        run(population, args.seeds, args.same_seed_only, args.classes, args.batch, args.configs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
