# Copyright (c) mmprompt contributors. All rights reserved.
import copy
import pickle

import torch

from mmprompt.models.ram.tagging_head import RAMTaggingHead
from mmprompt.models.utils.tensor_cache import TensorCache


class Counter:

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self):
        self.calls += 1
        return self.fn()


def test_cache_hits_while_unchanged_and_misses_on_any_change():
    lin = torch.nn.Linear(4, 3)
    x = torch.randn(5, 4)
    cache = TensorCache()
    fn = Counter(lambda: lin(x))
    keys = (x, lin.weight, lin.bias)
    with torch.no_grad():
        first = cache.get(keys, fn)
        assert cache.get(keys, fn) is first and fn.calls == 1
        # An in-place write (what load_state_dict does) is seen.
        lin.load_state_dict({'weight': torch.zeros(3, 4), 'bias': lin.bias})
        torch.testing.assert_close(cache.get(keys, fn), lin(x))
        assert fn.calls == 2
        x.add_(1)
        cache.get(keys, fn)
        assert fn.calls == 3
        # An equal but different tensor is a miss.
        y = x.clone()
        fn2 = Counter(lambda: lin(y))
        cache.get((y, lin.weight, lin.bias), fn2)
        assert fn2.calls == 1
        # Module.to swaps the parameter's data: a miss.
        lin.to(torch.float64)
        y = y.double()
        out = cache.get((y, lin.weight, lin.bias), lambda: lin(y))
        assert out.dtype == torch.float64
    # With autograd on, nothing is cached or returned from the cache.
    fn3 = Counter(lambda: lin(y))
    cache.get((y, lin.weight, lin.bias), fn3)
    cache.get((y, lin.weight, lin.bias), fn3)
    assert fn3.calls == 2


def test_inference_tensors_and_copies_are_not_cached():
    cache = TensorCache()
    with torch.inference_mode():
        x = torch.ones(3)
        fn = Counter(lambda: x * 2)
        cache.get((x, ), fn)
        cache.get((x, ), fn)
    assert fn.calls == 2  # no version counter: never trusted
    y = torch.ones(3)
    with torch.no_grad():
        cache.get((y, ), lambda: y * 2)
    for clone in (copy.deepcopy(cache), pickle.loads(pickle.dumps(cache))):
        fn = Counter(lambda: y * 3)
        with torch.no_grad():
            torch.testing.assert_close(clone.get((y, ), fn), y * 3)
        assert fn.calls == 1


def test_head_chunks_and_cache_are_exact():
    torch.manual_seed(0)
    head = RAMTaggingHead(
        embed_dims=16,
        memory_dims=8,
        num_heads=2,
        feedforward_channels=32,
        cpu_chunk_rows=None).eval()
    queries = torch.randn(11, 16)
    memory = torch.randn(3, 5, 8)
    with torch.no_grad():
        ref = head(queries, memory)
        # Layer by layer, no cache.
        x = queries
        for layer in head.layers:
            x = layer(x, *layer.cross_attn.project_memory(memory))
        torch.testing.assert_close(ref, x, atol=1e-6, rtol=0)
        for rows in (1, 4, 6, 33, 34):
            head.cpu_chunk_rows = rows
            torch.testing.assert_close(
                head(queries, memory), ref, atol=1e-6, rtol=0)
            # Per-image queries (RAM++) chunk the same way.
            torch.testing.assert_close(
                head(queries.expand(3, -1, -1), memory),
                ref,
                atol=1e-6,
                rtol=0)
        # New first-layer weights: the cached projection is not reused.
        q_proj = head.layers[0].cross_attn.q_proj
        q_proj.weight.mul_(2)
        x = queries
        for layer in head.layers:
            x = layer(x, *layer.cross_attn.project_memory(memory))
        torch.testing.assert_close(head(queries, memory), x, atol=1e-6, rtol=0)
    # With autograd on, gradients reach the first projection.
    head(queries, memory).sum().backward()
    assert q_proj.weight.grad is not None
