# Copyright (c) mmprompt contributors. All rights reserved.
"""Errors a user can act on.

Expected failures (a bad path, a wrong checkpoint, an image too large, an
argument out of range) raise a subclass of :class:`UserError` whose message
is one line saying what failed and what to do. Tools run their ``main`` through
:func:`run_tool`, which prints that line and exits with status 2; any other
exception is a bug and keeps its traceback.
"""
import difflib
import sys
from typing import Callable, Iterable, List, Optional


class UserError(Exception):
    """An expected failure; ``str(error)`` is one line for the user."""


class InvalidInputError(UserError, ValueError):
    """An argument or input value is invalid (wrong type, out of range)."""


class InputTypeError(UserError, TypeError):
    """An argument or input has the wrong type."""


class CheckpointError(UserError, ValueError):
    """A checkpoint cannot be read or does not fit the model."""


class ImageDecodeError(UserError, ValueError):
    """An image cannot be decoded, or is larger than the pixel budget."""


class NonFiniteScoresError(UserError, ValueError):
    """A model produced NaN or infinite scores: broken weights or inputs."""


class OutputPathError(UserError):
    """An output path cannot be written without losing data."""


def did_you_mean(name: str, names: Iterable[str], n: int = 1) -> str:
    """``"; did you mean 'a'?"`` (or ``'a', 'b' or 'c'``) of the up to
    ``n`` of ``names`` closest to ``name`` (difflib), or ``''`` if none is
    close: the suggestion that ends a message about a mistyped name."""
    close = difflib.get_close_matches(name, list(names), n=n, cutoff=0.6)
    if not close:
        return ''
    shown = [repr(c) for c in close]
    if len(shown) > 1:
        shown = [', '.join(shown[:-1]) + ' or ' + shown[-1]]
    return f'; did you mean {shown[0]}?'


def run_tool(main: Callable[[Optional[List[str]]], object],
             argv: Optional[List[str]] = None) -> None:
    """Run a command-line ``main``; a :class:`UserError` becomes one line.

    The line goes to stderr as ``error: <message>`` and the process exits
    with status 2. ``--debug`` anywhere in the arguments keeps the
    traceback instead (and is removed before ``main`` sees them).

    Args:
        main (Callable): The tool's ``main(argv)``.
        argv (list[str], optional): Defaults to ``sys.argv[1:]``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = '--debug' in argv
    argv = [a for a in argv if a != '--debug']
    try:
        main(argv)
    except UserError as e:
        if debug:
            raise
        sys.stderr.write(f'error: {e}\n')
        sys.exit(2)
