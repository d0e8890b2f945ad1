# Copyright (c) mmprompt contributors. All rights reserved.
"""The one progress display of mmprompt's loops, on stderr (stdout holds
results): on a terminal one line redrawn in place, cleared before a log
record; in a file or a pipe a whole line now and then."""
import logging
import sys
import time
from typing import Optional, TextIO

#: Seconds between two redraws on a terminal.
TTY_INTERVAL = 0.5
#: Seconds between two lines in a file or a pipe.
LINE_INTERVAL = 30.0


class Progress:
    """Progress over ``total`` items: count, rate and time left.

    Args:
        total (int): Items to process; nothing is shown for 0.
        enabled (bool): Show anything at all. Defaults to True.
        unit (str): What an item is. Defaults to ``'img'``.
        file (TextIO, optional): Where to write. Defaults to
            ``sys.stderr`` at the time of the call.
    """

    def __init__(self,
                 total: int,
                 enabled: bool = True,
                 unit: str = 'img',
                 file: Optional[TextIO] = None) -> None:
        self.total = int(total)
        self.enabled = enabled and self.total > 0
        self.unit = unit
        self.file = file if file is not None else sys.stderr
        isatty = getattr(self.file, 'isatty', None)
        self.tty = bool(isatty and isatty())
        self.count = 0
        self.start = time.perf_counter()
        self.last = self.start
        self.drawn = False
        self._handlers = _log_handlers() if self.enabled and self.tty \
            else []
        for handler in self._handlers:
            handler.addFilter(self._clear_before)

    def __enter__(self) -> 'Progress':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def line(self) -> str:
        """``'[  7/100]    3.5 img/s, 00:00:26 left'``."""
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = self.count / elapsed
        left = (self.total - self.count) / rate if rate > 0 else 0
        return (f'[{self.count:>{len(str(self.total))}}/{self.total}] '
                f'{rate:7.1f} {self.unit}/s, '
                f'{time.strftime("%H:%M:%S", time.gmtime(left))} left')

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items done; redraw when it is time."""
        self.count = min(self.total, self.count + n)
        if not self.enabled:
            return
        now = time.perf_counter()
        done = self.count >= self.total
        interval = TTY_INTERVAL if self.tty else LINE_INTERVAL
        if now - self.last < interval and not done:
            return
        self.last = now
        if self.tty:
            self.file.write('\r' + self.line())
            self.drawn = True
        else:
            self.file.write(self.line() + '\n')
        self.file.flush()
        if done:
            self.close()

    def _clear_before(self, record: logging.LogRecord) -> bool:
        """A handler's filter: clear the bar before the record is written."""
        self.clear()
        return True

    def clear(self) -> None:
        """Erase the bar's line (drawn again on the next update)."""
        if self.drawn:
            self.file.write('\r\x1b[K')
            self.file.flush()
            self.drawn = False

    def close(self) -> None:
        """End the display: the last line stays, the log is released."""
        for handler in self._handlers:
            handler.removeFilter(self._clear_before)
        self._handlers = []
        if self.drawn:
            self.file.write('\n')
            self.file.flush()
            self.drawn = False
        self.enabled = False


def _log_handlers() -> list:
    """The handlers of MMEngine's current logger."""
    from mmengine.logging import MMLogger
    return list(MMLogger.get_current_instance().handlers)
