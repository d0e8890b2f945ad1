# Copyright (c) mmprompt contributors. All rights reserved.
"""Issue 22: one progress display, on stderr, that log lines do not run
into."""
import io
import re
from types import SimpleNamespace

from mmengine.logging import MMLogger, print_log

from mmprompt.engine.test_hooks import TestProgressHook
from mmprompt.utils import progress as P

LINE = r'\[ ?(\d+)/10\]\s+\d+\.\d img/s, \d\d:\d\d:\d\d left'


class Terminal(io.StringIO):
    """What a terminal receives, from the bar and the log alike."""

    def isatty(self) -> bool:
        return True


def test_pipe_gets_whole_lines_only():
    """Not a terminal: complete lines, at most one per LINE_INTERVAL, and
    always the last."""
    out = io.StringIO()
    bar = P.Progress(10, file=out)
    for _ in range(10):
        bar.update()
    bar.close()
    text = out.getvalue()
    assert '\r' not in text
    assert re.fullmatch(LINE + '\n', text), text
    assert re.fullmatch(LINE + '\n', text).group(1) == '10'


def test_disabled_or_empty_writes_nothing():
    out = Terminal()
    for bar in (P.Progress(10, enabled=False, file=out),
                P.Progress(0, file=out)):
        bar.update(3)
        bar.close()
    assert out.getvalue() == ''


def test_log_record_clears_the_bar_on_a_terminal(monkeypatch):
    """A log line printed while the bar is drawn starts on a cleared line
    (``\\r`` + erase), not after the bar's text; the bar comes back on the
    next update; closing it releases the log's handlers."""
    monkeypatch.setattr(P, 'TTY_INTERVAL', 0.0)
    term = Terminal()
    logger = MMLogger.get_instance('s7h1_progress_test', log_level='INFO')
    handler = logger.handlers[0]
    filters = list(handler.filters)
    old = handler.setStream(term)
    try:
        bar = P.Progress(10, file=term)
        bar.update(4)
        print_log('a log line', logger='current')
        bar.update(6)
        assert handler.filters == filters  # released when done
    finally:
        handler.setStream(old)
    text = term.getvalue()
    first, rest = text.split('\r\x1b[K', 1)
    assert re.fullmatch('\r' + LINE, first).group(1) == '4'
    log, last = rest.split('\n', 1)
    assert log.endswith('a log line')
    assert re.fullmatch('\r' + LINE + '\n', last).group(1) == '10'


def test_test_progress_hook_writes_to_stderr_only(capsys):
    """tools/test.py's bar: nothing on stdout, where results and logs go
    (MMEngine's ProgressBar wrote there); rank 0 counts for every rank."""
    hook = TestProgressHook()
    runner = SimpleNamespace(
        test_dataloader=SimpleNamespace(dataset=[0] * 10))
    hook.before_test_epoch(runner)
    hook.after_test_iter(runner, 0, outputs=[0] * 4)
    hook.after_test_iter(runner, 1, outputs=[0] * 6)
    hook.after_test_epoch(runner)
    captured = capsys.readouterr()
    assert captured.out == ''
    assert re.search(r'\[10/10\]', captured.err), captured.err
