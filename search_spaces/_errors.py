""":class:`SpaceError`: a space reference or a space's model that cannot be used, in one line."""

from __future__ import annotations

__all__ = ["SpaceError", "first_line"]

#: What to write instead, appended to the messages about a reference that does not resolve.
REF_HINT = "write --space NAME (a registered space), --space package.module:attr or --space my_space.py:attr"


class SpaceError(ValueError):
    """A space reference that does not resolve, or a user space whose model cannot be used.

    One line naming the problem and what to write instead, for the command line to print as is:
    a module or file that is not there, a missing attribute or one of the wrong kind, a define-by-run
    function that returns no ``nn.Module``, a model whose output does not fit the data.
    """


def first_line(exc: BaseException) -> str:
    """``"TypeName: first line of the message"``: an exception of user code as part of a one-line error."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
