# Copyright (c) mmprompt contributors. All rights reserved.
"""Errors a user can act on.

Expected failures (a bad path, a wrong checkpoint, an image too large, an
argument out of range) raise a subclass of :class:`UserError` whose message
is one line saying what failed and what to do. Tools run their ``main`` through
:func:`run_tool`, which prints that line and exits with status 2; any other
exception is a bug and keeps its traceback.
"""
import sys
from typing import Callable, List, Optional


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
