"""Ctrl-C in a run made of several processes: the launching process, the training processes it spawns,
and the data-loader workers each of them forks.

The terminal sends Ctrl-C (SIGINT) to every process of the command at once. Left to Python's default, a
data-loader worker dies of it (its parent then stops on "worker exited unexpectedly" instead of the
interrupt), and an interrupt that lands while a worker is being forked or inside a finaliser is printed
and swallowed ("Exception ignored in ...") while the run goes on. `CtrlC` is the handler that avoids
both; `install_ctrl_c` puts it in place; `ctrl_c_ignored` starts processes that ignore Ctrl-C until they
install their own handler (a spawned interpreter that is interrupted while it imports torch prints a
traceback). No torch here: the command-line tools install the handler before their heavy imports.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing import popen_fork
from multiprocessing import util as mp_util
from types import FrameType
from typing import Any, Optional

__all__ = ["CtrlC", "install_ctrl_c", "ctrl_c_ignored"]


# Code from which an exception is printed and swallowed ("Exception ignored in ..."): finalisers, and the
# callbacks Python runs around a fork.
_SWALLOWING_CODE = (popen_fork.Popen._launch.__code__, mp_util.Finalize.__call__.__code__,
                    weakref.finalize.__call__.__code__)


def _swallowing(frame: Optional[FrameType]) -> bool:
    """Whether an exception raised in `frame` would be printed and swallowed instead of stopping the run:
    inside a finaliser (`__del__`, e.g. a data-loader iterator stopping its workers; a weakref finaliser)
    or while a process is being forked (the fork's callbacks)."""
    while frame is not None:
        if frame.f_code.co_name == "__del__" or frame.f_code in _SWALLOWING_CODE:
            return True
        frame = frame.f_back
    return False


class CtrlC:
    """A SIGINT handler: it raises KeyboardInterrupt in the process that installed it and records that
    Ctrl-C was pressed (`pressed`).

    A process forked from that one (a data-loader worker) inherits the handler and ignores the signal: its
    parent stops it. An interrupt that lands where it would be swallowed (`_swallowing`) is delivered
    again as soon as the process is out of there. One that a library swallows anyway (in the middle of an
    import), or that surfaces as another error, can still be recognised through `pressed`.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.pressed = False

    def __call__(self, signum: int, frame: Optional[FrameType]) -> None:
        if os.getpid() != self.pid:
            return
        self.pressed = True
        if _swallowing(frame):
            threading.Thread(target=self._deliver_later, args=(threading.get_ident(),), daemon=True).start()
            return
        raise KeyboardInterrupt

    @staticmethod
    def _deliver_later(thread_id: int) -> None:
        while _swallowing(sys._current_frames().get(thread_id)):
            time.sleep(0.001)
        _thread.interrupt_main()


def install_ctrl_c() -> tuple[CtrlC, Any]:
    """Install a new `CtrlC` as this process's SIGINT handler (main thread only); returns it and the
    handler it replaced, to be put back with `signal.signal(signal.SIGINT, previous)`."""
    handler = CtrlC()
    return handler, signal.signal(signal.SIGINT, handler)


@contextmanager
def ctrl_c_ignored() -> Iterator[None]:
    """Ignore Ctrl-C in this process while the block runs, so that the processes it starts inherit
    "ignored" (a Python interpreter keeps an ignored SIGINT ignored). Outside the main thread, where
    handlers cannot be changed, nothing is changed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
