"""Atomic file output: readers (and a rerun after a kill) see the old file or the whole new one, never a part.

Everything the project writes that a later step reads (checkpoints, averaged weights, feature files, CSV
lists, YAML, reports, videos) goes through `atomic_output` (a file object) or `atomic_path` (a path, for
writers that open the file themselves, such as PyAV and PIL): a temporary file `.<name>.<random>.tmp` in
the target's folder, flushed to disk, given the usual permissions, then renamed over the target.
`make_writable_dir` proves, before a long job starts, that files can be written in a folder at all.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, Optional, TypeVar

from slowfast.errors import UserError


def temp_prefix(path: str) -> str:
    """The name prefix of `path`'s temporary files (for cleaning up after a killed run)."""
    return f".{os.path.basename(path)}."


def is_temp_of(name: str, path: str) -> bool:
    """Whether the file name `name` is one of `path`'s temporary files (`.<basename>.<random>.tmp`)."""
    prefix = temp_prefix(path)
    middle = name[len(prefix):-len(".tmp")]
    return name.startswith(prefix) and name.endswith(".tmp") and bool(middle) and "." not in middle


def _publish(tmp: str, path: str) -> None:
    """Give `tmp` the permissions of a normally created file (mkstemp makes 0600 files), then rename it."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path in `path`'s folder for a writer that opens files itself; on success the
    file written there replaces `path`, on an exception it is removed.

    The temporary name ends in `.tmp`, so a writer that picks the format from the extension (PyAV, PIL)
    must be given the format explicitly.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=temp_prefix(path), suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextmanager
def atomic_output(path: str, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file for writing (`mode` "w" or "wb"); on success it replaces `path`."""
    with atomic_path(path) as tmp, open(tmp, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as f:
        yield f
        f.flush()


def atomic_write_text(path: str, text: str) -> None:
    with atomic_output(path, "w") as f:
        f.write(text)


def atomic_torch_save(obj: Any, path: str) -> None:
    import torch

    with atomic_output(path, "wb") as f:
        torch.save(obj, f)


def atomic_savefig(fig: Any, path: str, **kwargs: Any) -> None:
    """Save a matplotlib figure (format from `path`'s extension)."""
    fmt = os.path.splitext(path)[1].lstrip(".") or "png"
    with atomic_output(path, "wb") as f:
        fig.savefig(f, format=fmt, **kwargs)


def make_writable_dir(path: str, key: str) -> None:
    """Create `path` and prove a file can be written there; a one-line UserError otherwise."""
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test.", suffix=".tmp")
        os.close(fd)
        os.remove(probe)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"{key} {path} cannot be created: a regular file is in the way") from None
    except OSError as e:
        raise UserError(f"{key} {path} is not writable ({e.strerror or type(e).__name__})") from None


# A write failing with one of these means the disk, the quota or the file-size limit is full.
NO_ROOM_ERRNOS = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EFBIG) if e is not None)

_E = TypeVar("_E", bound=BaseException)


def in_chain(e: Optional[BaseException], kind: type[_E], where: Optional[Callable[[_E], bool]] = None) -> Optional[_E]:
    """The first exception of type `kind` (for which `where` holds, when given) among `e` and its causes, or
    None. Libraries report a failed or interrupted write in their own terms: torch.save raises a RuntimeError
    whose context is the OSError (disk full) or the KeyboardInterrupt, PyAV a callback error whose cause is
    the OSError."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, kind) and (where is None or where(e)):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def no_room(e: Optional[BaseException]) -> Optional[OSError]:
    """The OSError among `e` and its causes that says the disk (quota, file-size limit) is full, or None;
    looked for along the whole chain, past any other OSError a library raised on top of it."""
    return in_chain(e, OSError, lambda err: err.errno in NO_ROOM_ERRNOS)
