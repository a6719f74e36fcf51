"""The one root of user-facing errors.

Everything a user can cause (a bad config value, a missing or malformed file, unreadable data, wrong
weights) raises a subclass of `UserError`. The command-line tools catch this one type and print its
message on one line; any other exception is a bug in the project and keeps its traceback.
Subclasses may also derive from a built-in type (`ValueError`, `FileNotFoundError`, ...) so that callers
that catch those keep working.
"""

from __future__ import annotations

__all__ = ["UserError", "one_line"]


class UserError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""


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
