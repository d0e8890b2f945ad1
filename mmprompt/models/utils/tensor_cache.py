# Copyright (c) mmprompt contributors. All rights reserved.
"""A one-entry cache for values computed from frozen tensors."""
import weakref
from typing import Any, Callable, Optional, Sequence, Tuple

import torch


def _fingerprint(t: torch.Tensor) -> Optional[tuple]:
    """What must be unchanged for a value computed from ``t`` to hold
    (``_version`` counts in-place writes, ``Module.to`` swaps the data);
    None for inference tensors, which have no version counter."""
    if t.is_inference():
        return None
    return (t._version, t.data_ptr(), t.dtype, t.device, tuple(t.shape))


class TensorCache:
    """Remembers the last value computed from some tensors (held by weak
    reference). With autograd on, or while ``torch.compile`` traces, it
    always computes; copies (deepcopy, pickling) start empty."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget the stored value."""
        self._refs: Tuple[weakref.ref, ...] = ()
        self._prints: tuple = ()
        self._value: Any = None

    def get(self, tensors: Sequence[Optional[torch.Tensor]],
            fn: Callable[[], Any]) -> Any:
        """The value of ``fn()``, computed again only if ``tensors`` changed.

        Args:
            tensors (Sequence[torch.Tensor | None]): All ``fn`` reads.
            fn (Callable): Computes the value.
        """
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            return fn()
        tensors = [t for t in tensors if t is not None]
        prints = tuple(_fingerprint(t) for t in tensors)
        if (self._value is not None and len(self._refs) == len(tensors)
                and all(r() is t for r, t in zip(self._refs, tensors))
                and prints == self._prints):
            return self._value
        value = fn()
        if None in prints:
            self.clear()
        else:
            self._refs = tuple(weakref.ref(t) for t in tensors)
            self._prints, self._value = prints, value
        return value

    def __deepcopy__(self, memo: dict) -> 'TensorCache':
        return TensorCache()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.clear()
