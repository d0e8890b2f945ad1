# Copyright (c) mmprompt contributors. All rights reserved.
"""The demo's model worker: one thread per model, requests taken in turns.

Why one thread: the inferencers keep the current categories as state, so
two requests must never use a model at the same time, and PyTorch's CPU
kernels start an OpenMP thread team for each new calling thread, so calls
from gradio's pool of handler threads would grow the process by a team per
pool thread.

Why in turns (fairness): a request is a sequence of *steps*, and the worker
runs one step of each waiting request in round-robin order. A cheap request
(a closed-set tag, an open set already embedded, a classification) is one
step. An open set of new categories is embedded a few dozen names per step
(:class:`demo_backend.MMPromptBackend` cuts it), so a 1,000-name request
takes tens of steps and every other request gets a step between two of
them. A small request that arrives while a large one is being embedded
therefore waits for at most one step of each request ahead of it, not for
the whole large request; the large one takes about as long as alone when
nobody else is there.

What a step may do: anything with the model, as long as what it leaves
behind is not relied on by a later step of the same request; another
request's step may run in between. So the step that sets a request's
vocabulary also runs its prediction; steps before it only compute (and
cache) embeddings.

The page lets several requests per model into the backend at once (see
``ACTIVE_REQUESTS`` in ``gradio_demo.py``); gradio's queue holds the rest.
What they may hold in memory together is bounded by a
:class:`MemoryBudget`.
"""
import contextlib
import logging
import threading
import time
import traceback
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable, Deque, Generator, Iterator, Optional

from mmengine.logging import print_log

from mmprompt.utils.image_io import format_mb
from demo_inputs import DemoInputError

#: A request in steps: ``steps(model)`` returns a generator that yields
#: between steps and returns the request's result.
Steps = Callable[[Any], Generator[None, None, Any]]


class _Request:
    """A submitted request: its steps, where it stands, its result."""

    def __init__(self, steps: Steps) -> None:
        self.steps = steps
        self.running: Optional[Generator[None, None, Any]] = None
        self.future: Future = Future()
        self.steps_done = 0


def _one_step(fn: Callable[[Any], Any]) -> Steps:
    """``fn(model)`` as a request of one step."""

    def steps(model: Any) -> Generator[None, None, Any]:
        return fn(model)
        yield  # pragma: no cover - makes this a generator function

    return steps


class ModelWorker:
    """Build a model on first use, once, and serve requests in turns on one
    thread (see the module docstring).

    Args:
        build (Callable): Makes the model.
        name (str): Name of the worker thread.
    """

    def __init__(self, build: Callable[[], Any], name: str) -> None:
        self._build = build
        self._name = name
        self._obj = None
        self._error: Optional[str] = None
        self._waiting: Deque[_Request] = deque()
        self._cond = threading.Condition()
        self._thread: Optional[threading.Thread] = None  # on the first call

    def _get(self) -> Any:
        if self._obj is None and self._error is None:
            try:
                self._obj = self._build()
            except Exception as e:  # shown on the page, logged in full
                print_log(
                    'Building a demo model failed:\n' + traceback.format_exc(),
                    logger='current',
                    level=logging.ERROR)
                self._error = f'{type(e).__name__}: {e}'
        if self._error is not None:
            raise RuntimeError(f'the model could not be loaded '
                               f'({self._error}); see the server log')
        return self._obj

    def pending(self) -> int:
        """int: Requests submitted and not finished, bar the one whose step
        is running."""
        with self._cond:
            return len(self._waiting)

    def run(self, fn: Callable[[Any], Any]) -> Any:
        """Call ``fn(model)`` on the worker thread, as one step, and wait.

        Raises:
            RuntimeError: If the model could not be built (now or before).
        """
        return self.run_steps(_one_step(fn))

    def run_steps(self, steps: Steps) -> Any:
        """Run a request of several steps (a generator function of the
        model) on the worker thread, in turns with the others, and wait.

        Returns:
            The generator's return value.

        Raises:
            Whatever a step raised; RuntimeError if the model could not be
            built.
        """
        request = _Request(steps)
        with self._cond:
            self._waiting.append(request)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()
        return request.future.result()

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._waiting:
                    self._cond.wait()
                request = self._waiting.popleft()
            if self._step(request):
                with self._cond:
                    self._waiting.append(request)  # to the back: in turns

    @staticmethod
    def _advance(request: _Request, model: Any) -> None:
        if request.running is None:
            request.running = request.steps(model)
        next(request.running)

    def _step(self, request: _Request) -> bool:
        """Run one step of ``request``; True if it has more."""
        try:
            self._advance(request, self._get())
        except StopIteration as done:
            request.future.set_result(done.value)
            return False
        except BaseException as e:  # the caller's error, raised there
            request.future.set_exception(e)
            return False
        request.steps_done += 1
        return True


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
