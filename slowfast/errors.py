"""The one root of user-facing errors.

Everything a user can cause (a bad config value, a missing or malformed file, unreadable data, wrong
weights) raises a subclass of `UserError`. Every command-line tool runs through `cli_main`, which catches
this one type and prints its message on one line (`error: ...`, exit status `exit_code`), and answers Ctrl-C
with one line and status 130; any other exception is a bug in the project and keeps its traceback.
Subclasses may also derive from a built-in type (`ValueError`, `FileNotFoundError`, ...) so that callers
that catch those keep working.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any, Optional

__all__ = ["UserError", "Interrupted", "one_line", "cli_main", "mute_cleanup_errors", "release_after_interrupt",
           "INTERRUPTED_EXIT_CODE"]

INTERRUPTED_EXIT_CODE = 130  # the shell's convention for a command stopped by Ctrl-C (SIGINT)


class UserError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""

    exit_code = 1  # the command's exit status when this error stops it


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with the line `cli_main` prints in place of its default: what the command kept and how to go on."""


def one_line(e: BaseException) -> str:
    """The message of `e` on one line, as the command-line tools print it.

    An error raised in a data-loader worker arrives re-raised with the worker's traceback inside its
    message ("Caught ... in DataLoader worker process 0. Original Traceback ..."): only the original
    message, the traceback's last line, is kept.
    """
    text = str(e)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        name, sep, rest = last.partition(": ")
        text = rest if sep and " " not in name else last
    return " ".join(text.split()) or type(e).__name__


def mute_cleanup_errors() -> Callable[[Any], object]:
    """Called on Ctrl-C, inside the `except KeyboardInterrupt` block: from now on, what the interrupt left
    half-built may fail in its clean-up (torch's data-loader iterator, caught while it starts its workers,
    fails in its `__del__`) without an "Exception ignored in ..." traceback; the command is over and its one
    line says all there is to say. Returns the hook to give back to `release_after_interrupt`."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    return hook


def release_after_interrupt(hook: Callable[[Any], object]) -> None:
    """After the `except` block (the interrupted frames are gone): collect what they held, then restore `hook`."""
    import gc

    try:
        gc.collect()
    finally:
        sys.unraisablehook = hook


MainFunction = Callable[[Optional[Sequence[str]]], Optional[int]]


def cli_main(interrupted: str = "interrupted") -> Callable[[MainFunction], Callable[..., int]]:
    """Decorator of a command's `main(argv=None)`: its return value is the exit status (None: 0); a
    `UserError` prints `error: <one line>` on stderr and returns its `exit_code`; Ctrl-C prints
    `interrupted` (what to do next), or the line of an `Interrupted` the command raised, and returns 130."""
    def decorate(main: MainFunction) -> Callable[..., int]:
        @functools.wraps(main)
        def run(argv: Optional[Sequence[str]] = None) -> int:
            try:
                return int(main(argv) or 0)
            except UserError as e:
                print(f"error: {one_line(e)}", file=sys.stderr)
                return e.exit_code
            except KeyboardInterrupt as e:
                hook = mute_cleanup_errors()
                line = str(e) if isinstance(e, Interrupted) and str(e) else interrupted
            release_after_interrupt(hook)  # once the interrupted frames (and what they half-built) are gone
            print(line, file=sys.stderr)
            return INTERRUPTED_EXIT_CODE

        return run

    return decorate
