"""A Ray Tune search whose scheduler stops candidates by their gradients before they train.

    python examples/tune_scheduled.py                          # 24 candidates, 6 epochs each at most
    python examples/tune_scheduled.py --samples 8 --epochs 3   # the test's size

A plain Tune trainable (an MLP on a synthetic 10-class task, searched over depth, width, activation and
learning rate with Tune's ``OptunaSearch``) made gradient-scheduled by two added lines, marked ``# gradnas``:
the import, and ``report_gradients(...)`` before training, which scores the untrained network on one batch
and reports the values at iteration 0. ``GradientScheduler`` (in place of ``ASHAScheduler``) stops a candidate
there when its combined gradnas score is below the median of the earlier candidates' (after 5 of them), and
halves the rest on the accuracy as ASHA does (rungs at epochs 1, 3, 9, ...). See docs/ray-tune.md.

The script prints each trial's config, how many epochs it trained and its best accuracy, then the scheduler's
counts. Keep ``tune.Tuner(...).fit()`` under ``if __name__ == "__main__":`` (Ray workers import this file).
"""

from __future__ import annotations

import argparse
import sys

import torch
from ray import tune
from ray.tune.search.optuna import OptunaSearch
from torch import nn

from nas.integrations.tune import GradientScheduler, report_gradients  # gradnas

SPACE = {
    "depth": tune.randint(1, 7),
    "width": tune.lograndint(8, 257),
    "activation": tune.choice(["relu", "tanh", "sigmoid"]),
    "lr": tune.loguniform(1e-4, 1.0),
}
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def make_data(n: int = 2000, dim: int = 20, classes: int = 10, seed: int = 0):
    """``((x, y), (x_test, y_test))``: Gaussian inputs labelled by a fixed random two-layer teacher."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2 * n, dim, generator=g)
    teacher = torch.randn(dim, 64, generator=g), torch.randn(64, classes, generator=g)
    y = (torch.tanh(x @ teacher[0]) @ teacher[1]).argmax(1)
    return (x[:n], y[:n]), (x[n:], y[n:])


def build(config: dict, dim: int = 20, classes: int = 10) -> nn.Module:
    layers, width = [], dim
    for _ in range(config["depth"]):
        layers += [nn.Linear(width, config["width"]), ACTIVATIONS[config["activation"]]()]
        width = config["width"]
    return nn.Sequential(*layers, nn.Linear(width, classes))


def trainable(config: dict, epochs: int = 6) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    (x, y), (x_test, y_test) = make_data()
    model = build(config)
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=0.9)
    report_gradients(model, (x[:64], y[:64]), metrics={"acc": 0.1})  # gradnas: scored before training
    for _ in range(epochs):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
        with torch.no_grad():
            acc = float((model(x_test).argmax(1) == y_test).float().mean())
        tune.report({"acc": acc})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=24, help="candidates (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=6, help="epochs of a candidate trained in full (default: %(default)s)")
    p.add_argument("--cpus", type=int, default=2, help="CPUs for Ray (default: %(default)s)")
    p.add_argument("--storage", default=None, help="Tune's storage_path (default: ~/ray_results)")
    p.add_argument("--seed", type=int, default=0, help="the searcher's seed (default: %(default)s)")
    args = p.parse_args(argv)
    if args.samples < 1 or args.epochs < 1 or args.cpus < 1:
        p.error("--samples, --epochs and --cpus must be >= 1")
    import ray

    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    scheduler = GradientScheduler(metric="acc", mode="max", max_t=args.epochs, grace_period=1, reduction_factor=3)
    tuner = tune.Tuner(
        tune.with_parameters(trainable, epochs=args.epochs),
        param_space=SPACE,
        tune_config=tune.TuneConfig(scheduler=scheduler, search_alg=OptunaSearch(metric="acc", mode="max", seed=args.seed),
                                    num_samples=args.samples, max_concurrent_trials=args.cpus),
        run_config=tune.RunConfig(storage_path=args.storage, verbose=0),
    )
    grid = tuner.fit()
    for r in sorted(grid, key=lambda r: -(r.metrics_dataframe["acc"].max())):
        c = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.config.items()}
        epochs = int(r.metrics["training_iteration"]) - 1  # the first result is the gradient report
        print(f"{str(c):<72} epochs {epochs}  best acc {r.metrics_dataframe['acc'].max():.3f}")
    print(scheduler.debug_string())
    best = grid.get_best_result(metric="acc", mode="max", scope="all")
    print(f"best: {best.config} acc {best.metrics_dataframe['acc'].max():.3f}")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
