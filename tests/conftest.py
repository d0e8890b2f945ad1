# Copyright (c) mmprompt contributors. All rights reserved.
import os
import os.path as osp

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# ../shared beside the checkout; MMPROMPT_SHARED overrides it.
SHARED = os.environ.get('MMPROMPT_SHARED',
                        osp.join(osp.dirname(REPO_ROOT), 'shared'))
RAM_DATA = osp.join(SHARED, 'ram', 'data')
RAM_VECTORS = osp.join(SHARED, 'ram', 'vectors')


def pytest_report_header(config):
    """The free disk under the temporary directory. The full-size tests
    write checkpoints and ONNX files there; with a passed test's files gone
    at its teardown (pytest.ini) the suite's peak was 1.3 GB, plus 0.8 GB
    of torch.compile's cache. A full disk shows as errors in unrelated
    tests, so say so first."""
    import shutil
    import tempfile
    where = tempfile.gettempdir()
    free = shutil.disk_usage(where).free / 2**30
    line = f'mmprompt: {free:.1f} GiB free under {where}'
    if free < 3:
        line += (' -- the suite needs about 3 GiB there; set TMPDIR to a '
                 'larger disk')
    return line


def pytest_sessionstart(session):
    """In CI the shared data must be there: parity tests that skip for
    want of their reference would pass without checking anything."""
    if os.environ.get('CI') and not osp.isdir(osp.join(SHARED, 'ram')):
        raise pytest.UsageError(
            f'CI is set but the shared data is missing at {SHARED} '
            '(set MMPROMPT_SHARED)')


def pytest_collection_modifyitems(config, items):
    """``heavy`` tests (full-size Swin-L ONNX exports, over 10 minutes each
    on two cores) run only with ``MMPROMPT_HEAVY=1``: they would take the
    suite past its time budget. Their figures are in docs/benchmarks.md."""
    if os.environ.get('MMPROMPT_HEAVY') == '1':
        return
    skip = pytest.mark.skip(reason='heavy: set MMPROMPT_HEAVY=1 to run')
    for item in items:
        if 'heavy' in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope='session', autouse=True)
def _register_and_threads():
    from mmprompt.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


@pytest.fixture(scope='session')
def shared_dir():
    if not osp.isdir(SHARED):
        pytest.skip(f'shared data not found at {SHARED}')
    return SHARED


@pytest.fixture(scope='session')
def ram_vectors_dir():
    """``shared/ram/vectors``: tiny RAM / RAM++ reference vectors."""
    if not osp.isdir(RAM_VECTORS):
        pytest.skip(f'RAM test vectors not found at {RAM_VECTORS}')
    return RAM_VECTORS


@pytest.fixture(scope='session')
def ram_data_dir():
    """``shared/ram/data``: RAM's tag lists, thresholds and templates."""
    if not osp.isdir(RAM_DATA):
        pytest.skip(f'RAM data not found at {RAM_DATA}')
    return RAM_DATA


@pytest.fixture(autouse=True)
def _cache_home_in_tmp(monkeypatch, tmp_path_factory):
    """mmprompt's cache folder (tools/test.py caches prototypes there by
    default) is a temporary one unless MMPROMPT_HOME is set."""
    if not os.environ.get('MMPROMPT_HOME'):
        monkeypatch.setenv('MMPROMPT_HOME',
                           str(tmp_path_factory.mktemp('home')))


@pytest.fixture(autouse=True)
def _close_runner_log_files():
    """After each test, detach the log files MMEngine's Runners left on
    their loggers. ``print_log(logger='current')`` writes to the newest
    MMLogger, whose file lives in that test's work dir; once the dir is
    gone (a passed test's tmp_path, pytest.ini), a later test's log line
    would reopen it and raise FileNotFoundError in whichever test runs
    next in the same process. Likewise the Runners' visualizers: a Runner
    made in the same second as an earlier one gets its visualizer (they are
    named by the time), which writes into the earlier, deleted work dir.

    And the console: a logger made during a test that captures output
    (capsys) keeps that test's stream, closed once it ends; its next line
    prints "--- Logging error ---" into whichever test logs next. Console
    handlers write to the ``sys.stdout`` / ``sys.stderr`` of the moment."""
    _follow_current_streams()
    yield
    import logging

    from mmengine.logging import MMLogger
    from mmengine.visualization import Visualizer
    for logger in list(MMLogger._instance_dict.values()):
        for handler in list(logger.handlers):
            if isinstance(handler, logging.FileHandler):
                logger.removeHandler(handler)
                handler.close()
    _follow_current_streams()
    # Each subclass (MMPreTrain's UniversalVisualizer) keeps its own.
    classes = [Visualizer]
    while classes:
        cls = classes.pop()
        cls._instance_dict.clear()
        classes += cls.__subclasses__()


class _CurrentStream:
    """``sys.stdout`` or ``sys.stderr`` as it is at each write."""

    def __init__(self, name: str) -> None:
        self.name = name

    def write(self, text: str) -> int:
        import sys
        return getattr(sys, self.name).write(text)

    def flush(self) -> None:
        import sys
        getattr(sys, self.name).flush()


def _follow_current_streams() -> None:
    """Point MMEngine loggers' console handlers at the current streams."""
    import logging
    import sys

    from mmengine.logging import MMLogger
    for logger in list(MMLogger._instance_dict.values()):
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler) or not isinstance(
                    handler, logging.StreamHandler) or isinstance(
                        handler.stream, _CurrentStream):
                continue
            name = 'stderr' if handler.stream in (
                sys.stderr, sys.__stderr__) else 'stdout'
            # Not setStream: it flushes the old stream, maybe closed.
            handler.stream = _CurrentStream(name)
