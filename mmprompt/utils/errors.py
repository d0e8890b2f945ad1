# Copyright (c) mmprompt contributors. All rights reserved.
"""Errors a user can act on: one line saying what failed and what to do.
Any other exception is a bug and keeps its traceback."""
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
    ``n`` of ``names`` closest to ``name``, or ``''`` if none is close."""
    close = difflib.get_close_matches(name, list(names), n=n, cutoff=0.6)
    if not close:
        return ''
    shown = [repr(c) for c in close]
    if len(shown) > 1:
        shown = [', '.join(shown[:-1]) + ' or ' + shown[-1]]
    return f'; did you mean {shown[0]}?'


def run_tool(main: Callable[[Optional[List[str]]], object],
             argv: Optional[List[str]] = None) -> None:
    """Run a command-line ``main``; a :class:`UserError` becomes ``error:
    <message>`` on stderr and exit status 2 (``--debug`` keeps the
    traceback).

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
    dist = sys.modules.get('torch.distributed')
    if dist is not None and dist.is_available() and dist.is_initialized():
        # Every rank done before any tears gloo down: a rank whose peer had
        # gone aborted at exit now and then ('terminate called without an
        # active exception', SIGABRT, once in CI after a finished run).
        dist.barrier()
        dist.destroy_process_group()
