"""The one root of user-facing errors.

Everything a user can cause (a bad config value, a missing or malformed file, unreadable data, wrong
weights) raises a subclass of `UserError`. The command-line tools catch this one type and print its
message on one line; any other exception is a bug in the project and keeps its traceback.
Subclasses may also derive from a built-in type (`ValueError`, `FileNotFoundError`, ...) so that callers
that catch those keep working.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""
