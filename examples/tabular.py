"""Search an MLP for a table: a CSV file with a label column, from Python or from the shell.

    python examples/tabular.py                                  # writes a demo CSV, 2-minute budget search
    python examples/tabular.py my.csv --target label --budget 5m
    python examples/tabular.py my.csv --target label --trials 20   # proxy-only: scored, not trained

The same search from the shell::

    python -m nas search --dataset table:my.csv --target label --budget 5m \
        --bounds '{"depth": [2, 12], "width": [32, 256]}'

What it shows: ``dataset="table:PATH"`` with ``target=COLUMN`` reads the table (numeric columns
median-imputed and standardized, text columns one-hot, a stratified 20 % held out for testing; see
docs/data.md) and searches the MLP space (``mlp_looks_linear``, the default for tables), narrowed by
``--bounds`` to networks a table of this size needs (up to 12 layers of 256 units). A budget search
ends with a trained model; ``nas.load_model(path, with_info=True)`` returns it with the recipe
(``info["preprocess"]``) that ``nas.data.encode_table`` applies to new rows.

The demo table (without a CSV argument; written to ``RUNS_DIR/customers.csv``): 1,500 customers with an
age, an income, a number of visits, a city and a plan, labelled ``churn`` / ``stay`` / ``upgrade`` by a
noisy rule (about 0.7 test accuracy is what the rule's noise allows). Run time on a 2-core CPU: the budget
plus start-up (``--budget 2m``, ``--workers 1``: in this process; 2 min 13 s measured); the example's
test (200 rows, ``--trials 2``) about 5 seconds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def write_demo_csv(path: str | Path, rows: int = 1500, seed: int = 0) -> Path:
    """A customer table with a ``label`` column (3 classes) and a few missing values, as a CSV file."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, rows).clip(18, 90).round()
    income = rng.lognormal(10.5, 0.5, rows).round(-2)
    visits = rng.poisson(6, rows)
    city = rng.choice(["oslo", "rome", "lima", "pune"], rows)
    plan = rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2])
    score = 0.04 * (age - 40) + 0.8 * np.log(income / 36000) + 0.2 * (visits - 6) + (plan == "basic") * 0.7
    score += rng.normal(0, 0.5, rows)
    label = np.where(score < -0.3, "churn", np.where(score > 0.7, "upgrade", "stay"))
    frame = pd.DataFrame({"age": age, "income": income, "visits": visits, "city": city, "plan": plan, "label": label})
    frame.loc[rng.choice(rows, rows // 50, replace=False), "income"] = np.nan  # missing values are imputed
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def main(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("csv", nargs="?", help="the table (default: a demo table written to a temporary folder)")
    p.add_argument("--target", default="label", help="the label column (default: %(default)s)")
    p.add_argument("--rows", type=int, default=1500, help="rows of the demo table (default: %(default)s)")
    p.add_argument("--budget", default=None, help="budget search of this wall-clock duration (default: 2m)")
    p.add_argument("--trials", type=int, default=None, help="instead: a proxy-only search of N trials")
    p.add_argument("--bounds", default='{"depth": [2, 12], "width": [32, 256]}',
                   help="JSON: the MLP space narrowed (default: %(default)s)")
    p.add_argument("--workers", type=int, default=1, help="1: in this process; more: Ray workers (default: 1)")
    p.add_argument("--runs-dir", default="runs", help="where the study is written (default: %(default)s)")
    p.add_argument("--study", default=None, help="study name (default: from the table's name and the time)")
    p.add_argument("--early-steps", type=int, default=50, help="training steps between the two scorings")
    p.add_argument("--probe-size", type=int, default=64, help="examples in the probe batch")
    args = p.parse_args(argv)

    import nas

    csv = args.csv or write_demo_csv(Path(args.runs_dir) / "customers.csv", args.rows)
    budget = args.budget if args.budget or args.trials else "2m"
    result = nas.search(dataset=f"table:{csv}", target=args.target, budget=budget, trials=args.trials,
                        bounds=json.loads(args.bounds), workers=args.workers, runs_dir=args.runs_dir, study=args.study,
                        early_steps=args.early_steps, probe_size=args.probe_size, group_size=min(8, args.probe_size))
    info = result.study.user_attrs["dataset_info"]
    print(f"table {csv}: {info['num_classes']} classes, space {result.search_config.space}, "
          f"study {result.search_config.study} in {result.folder.database}")
    if result.best is None:  # a proxy-only search: candidates scored, none trained
        print(f"{result.stats['total_complete']} candidates scored; the best by the objectives "
              f"({', '.join(result.search_config.objectives.split(','))}):")
        for t in result.pareto:
            print(f"  trial {t.number}: {', '.join(f'{v:.4g}' for v in t.values)}  {t.user_attrs.get('config')}")
        return result
    curve = ", ".join(f"{a:.3f}" if isinstance(a, float) else str(a) for a in result.curve)
    print(f"best config: {result.config}")
    print(f"test accuracy: {result.test_acc:.3f} (per epoch: {curve})")
    print(f"model: {result.best['model']}")
    return result


if __name__ == "__main__":
    main()
