# Copyright (c) mmprompt contributors. All rights reserved.
"""Helpers shared by test modules (``tests/`` is on ``sys.path`` through
the rootdir ``conftest.py``)."""
import importlib.util
import os.path as osp
import sys
from types import ModuleType

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


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
