# Copyright (c) mmprompt contributors. All rights reserved.
"""The package's import graph: no cycles, and ``mmprompt.utils`` (the
ground floor) imports nothing above it.

The graph is read from the source with :mod:`ast`, not by importing:
module-level and function-level imports alike, relative ones resolved.
An import of ``a.b.c`` depends on ``a.b.c`` only, not on its parents
(importing a submodule runs ``a/__init__.py`` and ``a/b/__init__.py``,
but those are not the importer's dependency in the design sense); an
``from a.b import name`` depends on ``a.b.name`` if that is a module,
else on ``a.b``.
"""
import ast
import os.path as osp
from typing import Dict, List, Optional, Set

import mmprompt

PACKAGE_DIR = osp.dirname(osp.abspath(mmprompt.__file__))
#: The one module of ``mmprompt.utils`` that may import the floors above
#: it: ``register_all_modules`` imports every subpackage to register it.
REGISTRATION = 'mmprompt.utils.setup_env'
#: Modules outside ``mmprompt.utils`` on the ground floor too: the
#: registries, which import nothing of mmprompt (checked below).
GROUND = ('mmprompt.registry', )


def _modules() -> Dict[str, str]:
    """Dotted module name -> file, for every ``.py`` of the package."""
    import glob
    found = {}
    root = osp.dirname(PACKAGE_DIR)
    for path in glob.glob(osp.join(PACKAGE_DIR, '**', '*.py'),
                          recursive=True):
        name = osp.splitext(osp.relpath(path, root))[0].replace(osp.sep, '.')
        if name.endswith('.__init__'):
            name = name[:-len('.__init__')]
        found[name] = path
    return found


def _resolve(module: str, is_package: bool, level: int,
             target: Optional[str]) -> str:
    """The absolute name of ``from <level dots><target> import``."""
    if level == 0:
        return target or ''
    base = module.split('.')
    base = base if is_package else base[:-1]
    base = base[:len(base) - (level - 1)]
    return '.'.join(base + ([target] if target else []))


def import_graph() -> Dict[str, Set[str]]:
    """Module -> the ``mmprompt`` modules it imports (anywhere in it)."""
    modules = _modules()
    graph: Dict[str, Set[str]] = {}
    for name, path in modules.items():
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), path)
        is_package = path.endswith('__init__.py')
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node.level, node.module)
                for alias in node.names:
                    sub = f'{base}.{alias.name}'
                    deps.add(sub if sub in modules else base)
        graph[name] = {
            d
            for d in deps
            if d in modules and d != name and d.split('.')[0] == 'mmprompt'
        }
    return graph


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None."""
    state: Dict[str, int] = {}  # 1: on the stack, 2: done
    stack: List[str] = []

    def visit(node: str) -> Optional[List[str]]:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                cycle = visit(dep)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_find_cycle_reports_the_cycle():
    graph = dict(a={'b'}, b={'c'}, c={'a'}, d={'a'})
    assert find_cycle(graph) == ['a', 'b', 'c', 'a']
    assert find_cycle(dict(a={'b'}, b=set())) is None


def test_graph_resolves_relative_and_function_level_imports():
    graph = import_graph()
    # ``from .errors import CheckpointError`` at module level.
    assert 'mmprompt.utils.errors' in graph['mmprompt.utils.checkpoint']
    # ``import mmprompt.models`` inside a function.
    assert 'mmprompt.models' in graph['mmprompt.utils.setup_env']


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def test_utils_import_nothing_above_them():
    above = sorted(
        f'{name} imports {dep}'
        for name, deps in import_graph().items()
        if name.startswith('mmprompt.utils') and name != REGISTRATION
        for dep in deps
        if not dep.startswith('mmprompt.utils') and dep not in GROUND)
    assert not above, '; '.join(above)


def test_ground_modules_import_nothing_of_mmprompt():
    graph = import_graph()
    assert {name: graph[name] for name in GROUND} == {
        name: set()
        for name in GROUND
    }


def test_apis_layers():
    """The zoo table reader imports nothing else of ``mmprompt.apis``; the
    hub only the table; the builder sits on both."""
    graph = import_graph()

    def apis(name):
        return {d for d in graph[name] if d.startswith('mmprompt.apis')}

    assert apis('mmprompt.apis.model_zoo') == set()
    assert apis('mmprompt.apis.hub') == {'mmprompt.apis.model_zoo'}
    assert apis('mmprompt.apis.builder') == {
        'mmprompt.apis.model_zoo', 'mmprompt.apis.hub'
    }
