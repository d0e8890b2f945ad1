# Copyright (c) mmprompt contributors. All rights reserved.
"""Helpers shared by test modules (``tests/`` is on ``sys.path`` through
the rootdir ``conftest.py``): ``from testing_utils import clip, ram``.

- this module: repository paths, :func:`load_module` for tool scripts,
  :func:`save_openai_torchscript`, :func:`same_results` of inferencers;
- :mod:`testing_utils.clip`: tiny CLIP checkpoints, OpenAI-layout state
  dicts, a local HTTP file server;
- :mod:`testing_utils.ram`: tiny RAM / RAM++ checkpoints and configs from
  ``shared/ram/vectors``;
- :mod:`testing_utils.demo_models`: the demo's tiny models.
"""
import importlib.util
import os.path as osp
import sys
from types import ModuleType

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def same_results(a: list, b: list) -> bool:
    """Whether two inferencers' result lists are equal, their arrays
    (``pred_scores``) element-wise."""
    import numpy as np
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(
            np.array_equal(x[k], y[k]) if isinstance(x[k], np.ndarray) else
            x[k] == y[k] for k in x) for x, y in zip(a, b))


def side_by_side(call, inputs: list, rounds: int = 20) -> list:
    """``call(x)`` for each ``x`` of ``inputs`` in threads of their own,
    started together, ``rounds`` times each.

    Returns:
        list: Per input, its ``rounds`` answers.
    """
    import threading
    got = [[] for _ in inputs]
    start = threading.Barrier(len(inputs))

    def run(i):
        start.wait()
        for _ in range(rounds):
            got[i].append(call(inputs[i]))

    threads = [threading.Thread(target=run, args=(i, ))
               for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


def load_module(name: str, path: str) -> ModuleType:
    """Import a file that is not in a package (a tool script, a shared test
    helper) once, under ``name``.

    Args:
        name (str): Module name in ``sys.modules``.
        path (str): The ``.py`` file.

    Returns:
        ModuleType: The module, the same object on every call.
    """
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


def save_openai_torchscript(state_dict: dict,
                            path: str,
                            image_size: int,
                            context_length: int = 77,
                            vocab_size: int = 49408) -> None:
    """An archive shaped like OpenAI's CLIP release: the tensors in a
    ScriptModule, plus the three hyper-parameters OpenAI keeps as state
    entries."""
    import torch
    import torch.nn as nn
    root = nn.Module()
    for key, value in state_dict.items():
        *parents, leaf = key.split('.')
        module = root
        for name in parents:
            if name not in module._modules:
                module.add_module(name, nn.Module())
            module = module._modules[name]
        module.register_parameter(leaf, nn.Parameter(value.detach().clone()))
    for name, value in (('input_resolution', image_size),
                        ('context_length', context_length), ('vocab_size',
                                                             vocab_size)):
        root.register_buffer(name, torch.tensor(value))
    torch.jit.save(torch.jit.script(root), path)
