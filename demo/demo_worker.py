# Copyright (c) mmprompt contributors. All rights reserved.
"""The demo's shared models and memory admission.

A model is built once, on first use (:class:`LazyModel`), and then called
by every request at once: what it recognises is a value passed to each
call (:class:`~mmprompt.models.ram.TagVocabulary`,
:class:`~mmprompt.models.clip.ClassVocabulary`), never state on the model,
so requests need no turns. A small request is not held up by a large open
set: the two run side by side, and the category encoder embeds the large
set in chunks, each kept, so asking for it again costs nothing.

The page lets a few requests per model into the backend at once (see
``ACTIVE_REQUESTS`` in ``gradio_demo.py``; gradio's queue holds the rest),
which also bounds the OpenMP thread teams PyTorch starts per calling
thread. What they may hold in memory together is bounded by a
:class:`MemoryBudget`.
"""
import contextlib
import logging
import threading
import time
import traceback
from typing import Any, Callable, Iterator, Optional

from mmengine.logging import print_log

from mmprompt.utils.image_io import format_mb
from demo_inputs import DemoInputError


class LazyModel:
    """Build a model on first use, once, whichever thread asks first; a
    failed build is remembered and reported to every later request.

    Args:
        build (Callable): Makes the model.
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._obj = None
        self._error: Optional[str] = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        """The model.

        Raises:
            RuntimeError: If the model could not be built (now or before).
        """
        with self._lock:
            if self._obj is None and self._error is None:
                try:
                    self._obj = self._build()
                except Exception as e:  # shown on the page, logged in full
                    print_log(
                        'Building a demo model failed:\n' +
                        traceback.format_exc(),
                        logger='current',
                        level=logging.ERROR)
                    self._error = f'{type(e).__name__}: {e}'
        if self._error is not None:
            raise RuntimeError(f'the model could not be loaded '
                               f'({self._error}); see the server log')
        return self._obj


class MemoryBudget:
    """Admit requests by the memory they take: each reserves its estimate
    (its images' decoding, :func:`mmprompt.utils.image_io.
    estimate_decode_cost`) from a total until it ends. A request that
    would go over waits for others to end, up to ``wait`` seconds, then is
    refused; one larger than the whole budget is refused at once.

    Args:
        total (int): The budget, in bytes.
        wait (float): Seconds a request may wait for room. Defaults to 30.
    """

    def __init__(self, total: int, wait: float = 30.0) -> None:
        if total <= 0:
            raise ValueError(f'a memory budget must be > 0, got {total}')
        self.total = int(total)
        self.wait = wait
        self.used = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        """Hold ``nbytes`` of the budget for the ``with`` block.

        Raises:
            DemoInputError: If the request is larger than the budget, or no
                room was made within ``wait`` seconds.
        """
        nbytes = max(int(nbytes), 0)
        if nbytes > self.total:
            raise DemoInputError(
                f'this request would take {format_mb(nbytes / 1e6)} MB to '
                'decode, more than the demo allows '
                f'({format_mb(self.total / 1e6)} MB); use a smaller image')
        deadline = time.monotonic() + self.wait
        with self._cond:
            while self.used + nbytes > self.total:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DemoInputError(
                        'the demo is busy with other large images; try again '
                        'in a minute')
                self._cond.wait(left)
            self.used += nbytes
        try:
            yield
        finally:
            with self._cond:
                self.used -= nbytes
                self._cond.notify_all()
