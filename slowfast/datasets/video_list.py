"""The list of a dataset's videos: a CSV of `path<SEP>label` lines, checked line by line when it is read.

Kinetics, UCF101, HMDB51, Kinetics-600 and the synthetic default differ only in their files, so one reader
serves them all. A bad line stops the run before any training with the file name and line number. A line
repeating an earlier one (same path, same label) is read once, with one warning giving the count: a test
video listed twice would otherwise count twice in the accuracy.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from slowfast.errors import UserError

__all__ = ["VideoEntry", "read_video_csv", "DatasetFileError", "check_paths_exist", "PATH_SAMPLE"]


logger = logging.getLogger(__name__)


class DatasetFileError(UserError, ValueError):
    """A malformed CSV or class-index file; the message names the file and line."""


@dataclass(frozen=True)
class VideoEntry:
    path: str
    label: int


def read_video_csv(
    csv_path: str,
    separator: str,
    path_prefix: str,
    num_classes: int | None = None,
    keep_repeats: bool = False,
) -> list[VideoEntry]:
    """Parse and validate every line; paths are joined to `path_prefix` (absolute paths stay as they are).
    Repeated lines (same path and label) are read once (an evaluated video counts once), or kept with
    `keep_repeats` (a training list may repeat a video to sample it more often); either way one warning
    names the file and the count."""
    if not os.path.isfile(csv_path):
        raise DatasetFileError(f"dataset list not found: {csv_path}")
    entries: list[VideoEntry] = []
    seen: set[VideoEntry] = set()
    repeats: list[int] = []
    # utf-8-sig: spreadsheet programs ("CSV UTF-8") start the file with a byte-order mark, which would
    # otherwise become part of the first path.
    with open(csv_path, encoding="utf-8-sig") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line:
                continue
            fields = line.split(separator)
            if len(fields) != 2:
                raise DatasetFileError(
                    f"{csv_path}:{lineno}: expected 2 fields (path{separator}label) separated by "
                    f"{separator!r}, got {len(fields)}: {line[:200]!r}"
                )
            path, label_text = fields[0].strip(), fields[1].strip()
            if not path:
                raise DatasetFileError(f"{csv_path}:{lineno}: empty path")
            try:
                label = int(label_text)
            except ValueError:
                raise DatasetFileError(f"{csv_path}:{lineno}: label {label_text!r} is not an integer") from None
            if label < 0 or (num_classes is not None and label >= num_classes):
                upper = f"0..{num_classes - 1}" if num_classes is not None else "a non-negative integer"
                raise DatasetFileError(f"{csv_path}:{lineno}: label {label} outside {upper} (the class-index file)")
            entry = VideoEntry(os.path.join(path_prefix, path), label)
            if entry in seen:
                repeats.append(lineno)
                if not keep_repeats:
                    continue
            seen.add(entry)
            entries.append(entry)
    if not entries:
        raise DatasetFileError(f"{csv_path}: no videos listed")
    if repeats:
        what = ("kept: a training list samples a video as often as it is listed" if keep_repeats
                else "left out: each video is read once")
        logger.warning("%s: %d duplicate rows (the same path and label as an earlier row; the first at line %d) %s",
                       csv_path, len(repeats), repeats[0], what)
    return entries


# Listed paths checked for existence when a dataset is built: enough to catch a wrong DATA.PATH_PREFIX
# or separator at once, few enough to cost nothing on a network file system.
PATH_SAMPLE = 20


def check_paths_exist(entries: Sequence[VideoEntry], csv_path: str, path_prefix: str, sample: int = PATH_SAMPLE) -> None:
    """Refuse a list none of whose first `sample` videos exists, naming the prefix tried and what is
    there; a list where only some are missing is left to the per-video handling (broken videos)."""
    checked = entries[:sample]
    if not checked or any(os.path.exists(e.path) for e in checked):
        return
    where = path_prefix or os.getcwd()
    if os.path.isdir(where):
        names = sorted(os.listdir(where))
        found = f"it contains {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}" if names else "it is empty"
    else:
        found = "it does not exist"
    raise DatasetFileError(
        f"{csv_path}: none of the first {len(checked)} listed videos exists, e.g. {checked[0].path}; "
        f"DATA.PATH_PREFIX is {path_prefix!r} ({found}); check DATA.PATH_PREFIX and DATA.PATH_LABEL_SEPARATOR"
    )
