"""gradnas inside the stacks people already run.

- :mod:`nas.integrations.optuna`: ``GradientPruner`` and ``check(trial, model, batch)`` -- prune an
  Optuna trial by its gradients before it has trained (single- and multi-objective studies).
- :mod:`nas.integrations.tune`: a Ray Tune ``TrialScheduler`` that stops candidates by gradient evidence
  at iteration 0 and runs asynchronous successive halving on the user's metric afterwards.

Each submodule imports its framework lazily enough that ``import nas.integrations`` costs nothing.
"""
