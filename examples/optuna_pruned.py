"""A plain Optuna objective, pruned by gradients with two added lines (marked ``# gradnas``).

    python examples/optuna_pruned.py                      # 40 trials on mnist5k, about 1 minute on 2 CPU cores
    python examples/optuna_pruned.py --multi              # two objectives: test accuracy and parameters
    python examples/optuna_pruned.py --storage sqlite:///pruned.db   # run it in several shells at once

The objective samples an MLP (depth, width, activation) and its learning rate and batch size, trains it for
``--steps`` SGD steps and returns its test accuracy (and its parameter count with ``--multi``). The added
``check(trial, model, (x, y))`` scores the untrained model on one batch (gradnas's rung-0 values: cost about
two training steps), stores the values as user attributes of the trial and raises ``optuna.TrialPruned``
when the candidate's combined score is below the median of the candidates before it (after 5). The
training of a pruned candidate is never run. Optuna's ``Trial.report`` is not used, so the same two lines
work in the multi-objective study.

The data: ``mnist5k``, 5,000 real MNIST digits shipped with a dependency (no download).
"""

from __future__ import annotations

import argparse

import optuna
import torch
import torch.nn.functional as F
from torch import nn

from nas.data import load_dataset
from nas.integrations.optuna import GradientPruner, check  # gradnas

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def build(trial: optuna.Trial, input_size: int, num_classes: int) -> nn.Module:
    """An MLP from the trial's depth, width and activation."""
    depth = trial.suggest_int("depth", 1, 4)
    width = trial.suggest_int("width", 8, 256, log=True)
    act = ACTIVATIONS[trial.suggest_categorical("activation", list(ACTIVATIONS))]
    layers: list[nn.Module] = [nn.Flatten()]
    for i in range(depth):
        layers += [nn.Linear(input_size if i == 0 else width, width), act()]
    return nn.Sequential(*layers, nn.Linear(width if depth else input_size, num_classes))


def make_objective(data, steps: int, multi: bool):
    """The user's objective: build, train ``steps`` SGD steps, return the test accuracy (and the parameters)."""
    x_train, y_train, x_test, y_test = data.train_x, data.train_y, data.test_x, data.test_y

    def objective(trial: optuna.Trial):
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        batch_size = trial.suggest_categorical("batch_size", [32, 64, 128, 256])
        torch.manual_seed(trial.number)
        model = build(trial, x_train[0].numel(), data.num_classes)
        check(trial, model, (x_train[:64], y_train[:64]))  # gradnas: prune before training
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        for step in range(steps):
            idx = torch.randint(0, len(x_train), (batch_size,))
            opt.zero_grad()
            F.cross_entropy(model(x_train[idx]), y_train[idx]).backward()
            opt.step()
        with torch.no_grad():
            accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
        params = sum(p.numel() for p in model.parameters())
        return (accuracy, params) if multi else accuracy

    return objective


def main(argv: list[str] | None = None) -> optuna.Study:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=40, help="trials to run (default 40)")
    parser.add_argument("--steps", type=int, default=200, help="SGD steps per trial that survives (default 200)")
    parser.add_argument("--multi", action="store_true", help="two objectives: test accuracy (max), parameters (min)")
    parser.add_argument("--storage", default=None, help="an Optuna storage URL (default: in memory)")
    parser.add_argument("--study", default="optuna_pruned", help="study name in the storage")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.steps < 1:
        parser.error("--trials and --steps must be at least 1")
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_dataset("mnist5k")

    study = optuna.create_study(
        directions=["maximize", "minimize"] if args.multi else ["maximize"],
        sampler=optuna.samplers.TPESampler(seed=args.seed),
        pruner=GradientPruner(),  # gradnas
        storage=args.storage, study_name=args.study, load_if_exists=True,
    )
    study.optimize(make_objective(data, args.steps, args.multi), n_trials=args.trials)

    states = [t.state.name for t in study.trials]
    print(f"{len(states)} trials: {states.count('COMPLETE')} trained, {states.count('PRUNED')} pruned before training")
    for t in study.best_trials:
        print(f"  trial {t.number}: values {t.values}  params {t.params}")
    return study


if __name__ == "__main__":
    main()
