"""gradnas application layer: CLI, data, study, runner, evaluation (everything with I/O or state).

Use it from the shell as ``python -m nas --help`` (or ``gradnas --help``). ``nas`` imports the
``objectives`` and ``search_spaces`` libraries; they never import ``nas``.
"""

__all__: list[str] = []
