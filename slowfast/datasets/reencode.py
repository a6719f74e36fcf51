"""Re-encoded copies of a video folder that load fast: H.264 with short keyframe intervals and no B-frames.

Decoding a clip costs the frames from the keyframe before it to its last frame. Downloaded datasets
(Kinetics from YouTube) use long keyframe intervals (x264's default is 250 frames), so every clip decodes
hundreds of frames it never uses; a copy with a keyframe every few frames, no B-frames and a short side
of 256 px decodes a fraction of them.

`reencode_tree(src_dir, dst_dir)` mirrors every video under `src_dir` (`VIDEO_EXTENSIONS`) to the same
relative path under `dst_dir` with the extension `.mp4` (H.264, yuv420p, audio dropped):

* frame timing is kept, only the pixels change: the copy has the frames that decode from the source, at
  the same times (in seconds), and the average frame rate the source reports, so a loader picks the same
  frame numbers from it. The rate is exact for MP4/MOV sources and for constant-rate ones; a variable-rate
  MKV/WebM reports a nominal rate where the copy reports the true average. Frames whose timestamps go back
  (H.264 with B-frames stored in AVI) are numbered at the frame rate instead;
* each output is written to a temporary name in its folder and renamed when complete, so an output under
  its final name is complete: a rerun skips it (and removes temporaries a killed run left behind);
* a source that cannot be converted (unreadable, empty, truncated, audio only, not a video) is reported
  with its reason and the others are converted; a full disk stops the run (`NoRoomError`);
* the CSV and JSON files under `src_dir` (the dataset's lists and class-index files) are copied to the
  same relative path, the video paths of the CSV lines rewritten to `.mp4` where the extension changed;
* nothing is ever written inside `src_dir`.

`reencode_video(src, dst)` converts one file.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from fractions import Fraction
from math import gcd

import av
from av.video.reformatter import VideoReformatter

from slowfast.datasets.prepare import VIDEO_EXTENSIONS
from slowfast.errors import UserError, one_line
from slowfast.utils.atomic import atomic_output, atomic_write_text, is_temp_of, no_room

__all__ = [
    "DEFAULT_SHORT_SIDE",
    "DEFAULT_GOP",
    "DEFAULT_CRF",
    "DEFAULT_PRESET",
    "X264_PRESETS",
    "OUTPUT_EXTENSION",
    "FAILURES_FILE",
    "ReencodeError",
    "NoRoomError",
    "UnconvertibleVideoError",
    "EncodeSettings",
    "ReencodeReport",
    "output_size",
    "output_name",
    "rewrite_list_line",
    "reencode_video",
    "reencode_tree",
    "format_report",
    "available_cores",
]

DEFAULT_SHORT_SIDE = 256  # the size the original work's Kinetics copies had ("videos_se256")
# The defaults below were chosen on the data benchmark's Kinetics-like sources (340x256, x264 defaults), by
# decoding time of an 8x16 clip against bytes on disk (docs/data.md, "Fast loading", has the table):
# - keyframe interval 1 (all-intra): the reader then decodes exactly the frames a clip uses; at the same
#   size on disk it was the fastest of the intervals 1, 2, 4, 8 and 16 (e.g. interval 8 at 1.9x the
#   source's size decoded 2.9x faster than the source, all-intra at 2.1x the size 5.9x faster);
# - crf 26: x264 codes keyframes about 3 quantiser steps finer than P-frames, so in an all-intra copy crf 26
#   gives each frame about the quantiser a P-frame of x264's default encode (crf 23) gets; at crf 23 the
#   copies were 5x the source's size;
# - preset medium (x264's default): 15 % smaller files than veryfast and a little faster to decode, for
#   twice the encoding time, which is spent once.
DEFAULT_GOP = 1
DEFAULT_CRF = 26
DEFAULT_PRESET = "medium"
# x264's tunings; "fastdecode" (no CABAC, no deblocking) makes copies faster to read and larger, with
# blockier pictures at the same crf ("none" leaves x264's defaults).
X264_TUNES = ("none", "fastdecode", "film", "animation", "grain", "stillimage", "psnr", "ssim")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
OUTPUT_EXTENSION = ".mp4"
FAILURES_FILE = "reencode_failures.txt"
LIST_EXTENSIONS = (".csv", ".json")


class ReencodeError(UserError, ValueError):
    """A problem with the folders or settings of a re-encoding run (one line, names the path)."""

    exit_code = 2  # the run stopped; 1 is kept for "videos failed"


class NoRoomError(ReencodeError):
    """Writing an output failed because the disk is full; the run stops, the output is not kept."""


class UnconvertibleVideoError(UserError, ValueError):
    """One source file cannot be converted; the message is the one-line reason."""


@dataclass(frozen=True)
class EncodeSettings:
    """How each video is encoded: H.264 yuv420p, no B-frames, a keyframe every `gop` frames exactly.

    `short_side`: the smaller side is scaled down to this many pixels (never up; 0 keeps the size);
    `crf`/`preset`: x264's quality (lower crf: better pictures, bigger files) and speed/size trade-off;
    `tune`: an x264 tuning, e.g. "fastdecode" (faster to read, larger files);
    `threads`: decoding and encoding threads per video (0: FFmpeg's choice).
    """

    short_side: int = DEFAULT_SHORT_SIDE
    gop: int = DEFAULT_GOP
    crf: int = DEFAULT_CRF
    preset: str = DEFAULT_PRESET
    tune: str = "none"
    threads: int = 0

    def __post_init__(self) -> None:
        if self.short_side < 0 or self.short_side == 1:
            raise ReencodeError(f"short side must be 0 (keep the size) or at least 2 pixels, got {self.short_side}")
        if self.gop < 1:
            raise ReencodeError(f"keyframe interval (gop) must be at least 1 frame, got {self.gop}")
        if not 0 <= self.crf <= 51:
            raise ReencodeError(f"crf must be in 0..51, got {self.crf}")
        if self.preset not in X264_PRESETS:
            raise ReencodeError(f"unknown x264 preset {self.preset!r}; one of {', '.join(X264_PRESETS)}")
        if self.tune not in X264_TUNES:
            raise ReencodeError(f"unknown x264 tune {self.tune!r}; one of {', '.join(X264_TUNES)}")
        if self.threads < 0:
            raise ReencodeError(f"threads must be >= 0, got {self.threads}")

    def x264_options(self) -> dict[str, str]:
        # scenecut=0 keeps x264 from adding keyframes at scene changes, so keyframes fall exactly every `gop`
        # frames; min-keyint is clamped by x264 to gop/2+1 and only matters with scene cuts.
        params = f"keyint={self.gop}:min-keyint={self.gop}:scenecut=0:bframes=0"
        options = {"preset": self.preset, "crf": str(self.crf), "x264-params": params}
        if self.tune != "none":
            options["tune"] = self.tune
        return options


@dataclass
class ReencodeReport:
    """What a `reencode_tree` run did. Bytes count the videos that have an output (done and skipped)."""

    done: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # source path relative to src_dir -> reason
    bytes_before: int = 0
    bytes_after: int = 0
    seconds: float = 0.0
    lists: list[str] = field(default_factory=list)  # CSV/JSON files copied (relative paths)
    failures_file: str | None = None  # written when something failed

    @property
    def total(self) -> int:
        return self.done + self.skipped + len(self.failed)


# ---- one video -----------------------------------------------------------------------------------
def _even(x: float) -> int:
    return max(2, 2 * int(x / 2))


def output_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) of the copy: the short side scaled down to `short_side` (never up, 0 = keep),
    the aspect ratio kept, both sides even (H.264 yuv420p needs even sizes; odd ones lose a pixel)."""
    short = min(width, height)
    if not short_side or short <= short_side:
        return _even(width), _even(height)
    scale = short_side / short
    if width <= height:
        return _even(short_side), _even(height * scale + 1)  # long side rounded to the nearest even size
    return _even(width * scale + 1), _even(short_side)


def output_name(rel_path: str) -> str:
    """The copy's path for a source path: same folder and stem, extension `.mp4`."""
    return os.path.splitext(rel_path)[0] + OUTPUT_EXTENSION


def _reason(e: BaseException) -> str:
    """The system's or FFmpeg's words for `e`, without error numbers or the path (the report names the file)."""
    strerror = getattr(e, "strerror", None)
    return strerror if isinstance(strerror, str) and strerror else one_line(e)


def _open_source(src: str):
    try:
        st = os.stat(src)
    except OSError as e:
        raise UnconvertibleVideoError(f"cannot read: {_reason(e)}") from None
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        raise UnconvertibleVideoError("empty file (0 bytes)")
    try:
        container = av.open(src, metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError) as e:
        raise UnconvertibleVideoError(f"not a readable video: {_reason(e)}") from None
    if not container.streams.video:
        kind = "audio only" if container.streams.audio else "no video stream"
        container.close()
        raise UnconvertibleVideoError(kind)
    return container


def _decoded(container, stream, dts: list) -> Iterator:
    """The source's frames in presentation order; appends each packet's decoding timestamp to `dts`. A
    decoding error, or data that ends inside a frame (a truncated file), is the file's reason for failing."""
    packets = container.demux(stream)
    cut = False
    while True:
        try:
            packet = next(packets)
            if packet.size:
                dts.append(packet.dts)
                cut = packet.is_corrupt  # incomplete data, as read where a truncated file ends
            frames = packet.decode()
        except StopIteration:
            break
        except (av.FFmpegError, OSError, ValueError) as e:
            raise UnconvertibleVideoError(f"decoding failed: {_reason(e)}") from None
        yield from frames
    if cut:
        # Threaded decoding conceals the damage (no error): the incomplete last packet tells.
        raise UnconvertibleVideoError("truncated: the data ends inside a frame")


def _output_time_base(tb: Fraction, rate: Fraction | None) -> Fraction:
    """A time base that holds the source's timestamps and its average frame duration exactly."""
    ticks = tb.denominator if not rate else tb.denominator * rate.numerator // gcd(tb.denominator, rate.numerator)
    return Fraction(1, ticks if ticks < 2**31 else tb.denominator)  # MP4 time scales are 32-bit


class _UnorderedTimestamps(Exception):
    """The decoded frames' timestamps do not increase (e.g. H.264 with B-frames stored in AVI)."""


class _Writer:
    """Encodes frames given in presentation order with their timestamps, each lasting until the next one.

    MP4 readers derive a stream's average frame rate from its frame count and the span of its decoding
    timestamps (plus the last frame's duration). The copy has no B-frames, so its decoding timestamps could
    equal its presentation timestamps; it takes the source's where they allow (they are never later than
    the frame's time) and ends its last frame where the source's average rate is reproduced.
    """

    def __init__(self, container, stream, size: tuple[int, int]):
        self.container, self.stream, self.size = container, stream, size
        self.reformatter = VideoReformatter()
        self.pending = None  # the last frame, encoded once its duration is known
        self.first_dts: int | None = None
        self.last_dts: int | None = None
        self.count = 0
        self.timing: dict[int, tuple[int, int]] = {}  # pts -> (dts, duration) of frames inside the encoder
        self.source_dts = True  # False once the source's decoding timestamps cannot be followed

    def add(self, frame, pts: int, source_dts: int | None) -> None:
        """Queue `frame` at `pts`; `source_dts`: the source's decoding timestamp for it (both in output ticks)."""
        if self.pending is not None and pts <= self.pending.pts:
            raise _UnorderedTimestamps(f"frame timestamps do not increase at frame {self.count}")
        dts = pts
        if self.source_dts and source_dts is not None:
            dts = min(source_dts, pts)
        if self.last_dts is not None and dts <= self.last_dts:
            self.source_dts, dts = False, pts
        if self.pending is not None:
            self._encode(self.pending, pts - self.pending.pts)
        w, h = self.size
        # Bicubic: FFmpeg's default scaler, as in the usual `ffmpeg -vf scale` preparation of Kinetics.
        out = self.reformatter.reformat(frame, width=w, height=h, format="yuv420p", interpolation="BICUBIC")
        out.pts, out.time_base = pts, self.stream.codec_context.time_base
        self.pending, self.last_dts = out, dts
        self.first_dts = dts if self.first_dts is None else self.first_dts
        self.timing[pts] = (dts, 0)
        self.count += 1

    def finish(self, rate: Fraction | None) -> int:
        """Encode the last frame and flush the encoder; returns the number of frames."""
        if self.pending is None:
            raise UnconvertibleVideoError("no frames could be decoded")
        tb = self.stream.codec_context.time_base
        last = 1
        if rate:
            last = max(1, round(self.count / (rate * tb)) - (self.last_dts - self.first_dts))
        self._encode(self.pending, last)
        self._mux(self.stream.encode(None))
        return self.count

    def _encode(self, frame, duration: int) -> None:
        self.timing[frame.pts] = (self.timing[frame.pts][0], duration)
        self._mux(self.stream.encode(frame))

    def _mux(self, packets) -> None:
        for packet in packets:
            # x264 leaves durations unset; without B-frames its packets come in presentation order.
            packet.dts, packet.duration = self.timing.pop(packet.pts)
            self.container.mux(packet)


def _transcode(source, out_file, settings: EncodeSettings, numbered: bool) -> int:
    """Decode `source` (an open container) and write the copy to the file object `out_file`; `numbered`:
    frame i is given the time i / average rate instead of its own timestamp."""
    ist = source.streams.video[0]
    ist.thread_type = "AUTO"
    ist.codec_context.thread_count = settings.threads
    tb = ist.time_base or Fraction(1, 90000)
    rate = ist.average_rate or ist.guessed_rate
    out_tb = _output_time_base(tb, rate)
    size = output_size(ist.codec_context.width, ist.codec_context.height, settings.short_side)
    with av.open(out_file, mode="w", format="mp4") as out:
        ost = out.add_stream("libx264", rate=rate) if rate else out.add_stream("libx264")
        ost.width, ost.height, ost.pix_fmt = size[0], size[1], "yuv420p"
        ost.codec_context.time_base = ost.time_base = out_tb  # timestamps are carried over, not recomputed
        ost.codec_context.thread_count = settings.threads
        if ist.codec_context.sample_aspect_ratio:
            ost.codec_context.sample_aspect_ratio = ist.codec_context.sample_aspect_ratio
        ost.codec_context.options = settings.x264_options()
        writer = _Writer(out, ost, size)
        scale = tb / out_tb  # an integer: the output time base divides the source's
        step = round(1 / (rate * out_tb)) if rate else 1  # one frame at the average rate, exact when it fits
        source_dts: list = []
        for i, frame in enumerate(_decoded(source, ist, source_dts)):
            if numbered or frame.pts is None:  # numbered, as a loader counts frames without timestamps
                writer.add(frame, i * step, None)
            else:
                dts = source_dts[i] if i < len(source_dts) and source_dts[i] is not None else None
                writer.add(frame, int(frame.pts * scale), None if dts is None else int(dts * scale))
        return writer.finish(rate)


def reencode_video(src: str, dst: str, settings: EncodeSettings = EncodeSettings()) -> int:
    """Write the re-encoded copy of `src` to `dst` (MP4) atomically; returns its number of frames.

    Raises `UnconvertibleVideoError` (the reason) for a source that cannot be converted and `NoRoomError`
    when the disk is full; `dst` then does not exist (a previous `dst` is left as it was).
    """
    try:
        try:
            return _write_copy(src, dst, settings, numbered=False)
        except _UnorderedTimestamps:
            # Timestamps that go back cannot be kept (and a loader reading them is lost too): number the
            # frames at the average rate, which is the timing of the frame-rate-only AVI format they come from.
            return _write_copy(src, dst, settings, numbered=True)
    except (OSError, av.FFmpegError) as e:
        # PyAV may re-raise a failed write of its output file object as its own callback error, with the
        # write's OSError as the cause; look for the errno along the chain.
        full = no_room(e)
        if full is not None:
            raise NoRoomError(f"no room to write {dst}: {_reason(full)}; the run stopped (make room, then rerun "
                              "to resume)") from None
        if isinstance(e, av.FFmpegError):
            raise UnconvertibleVideoError(f"encoding failed: {_reason(e)}") from None
        raise UnconvertibleVideoError(f"writing the copy failed: {_reason(e)}") from None


def _write_copy(src: str, dst: str, settings: EncodeSettings, numbered: bool) -> int:
    source = _open_source(src)
    try:
        # PyAV writes through the Python file object, so a failed write raises at once (with a path, the
        # error would only surface when the file is closed, after the whole video was encoded).
        with atomic_output(dst, "wb") as f:
            return _transcode(source, f, settings, numbered)
    finally:
        source.close()


# ---- lists beside the videos ---------------------------------------------------------------------
def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def rewrite_list_line(line: str) -> str:
    """A list line `path<sep>label` with the path's video extension changed to `.mp4`; other lines as they are.

    The separator is found per line, "," first, then " " (a line is `path,label` when splitting on ","
    gives two fields with an integer label), so lists of either kind are rewritten.
    """
    body = line.rstrip("\r\n")
    for sep in (",", " "):
        fields = body.strip().split(sep)
        if len(fields) == 2 and fields[0].strip() and _is_int(fields[1].strip()):
            path = fields[0].strip()
            if os.path.splitext(path)[1].lower() not in VIDEO_EXTENSIONS:
                return line
            return body.replace(path, output_name(path), 1) + line[len(body):]
    return line


def _copy_lists(src_dir: str, dst_dir: str, lists: Sequence[str]) -> list[str]:
    """Copy the CSV and JSON files (CSV video paths rewritten to `.mp4`), each atomically."""
    for rel in lists:
        with open(os.path.join(src_dir, rel), "rb") as f:
            data = f.read()
        if rel.lower().endswith(".csv"):
            # surrogateescape: bytes that are not UTF-8 come back unchanged
            text = data.decode("utf-8", "surrogateescape")
            lines = (rewrite_list_line(line) for line in text.splitlines(keepends=True))
            data = "".join(lines).encode("utf-8", "surrogateescape")
        with atomic_output(os.path.join(dst_dir, rel), "wb") as f:
            f.write(data)
    return list(lists)


# ---- a folder of videos --------------------------------------------------------------------------
def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def _check_folders(src_dir: str, dst_dir: str) -> str:
    """The source folder's real path, after refusing folders that would make us write into it."""
    if not os.path.isdir(src_dir):
        raise ReencodeError(f"source folder not found: {src_dir}")
    src, dst = os.path.realpath(src_dir), os.path.realpath(dst_dir)
    if _inside(dst, src):
        where = "is the source folder" if dst == src else f"is inside the source folder {src_dir}"
        raise ReencodeError(f"output folder {dst_dir} {where}: choose a folder outside it (the source is never "
                            "written to)")
    if _inside(src, dst):
        raise ReencodeError(f"source folder {src_dir} is inside the output folder {dst_dir}: the copies could land "
                            "among the sources; choose an output folder outside it")
    return src


def _scan(src_dir: str) -> tuple[list[str], list[str]]:
    """(videos, CSV/JSON lists) under `src_dir`, as sorted relative paths."""
    videos, lists = [], []
    for folder, dirs, files in os.walk(src_dir):
        dirs.sort()
        for name in files:
            rel = os.path.relpath(os.path.join(folder, name), src_dir)
            ext = os.path.splitext(name)[1].lower()
            if ext in VIDEO_EXTENSIONS:
                videos.append(rel)
            elif ext in LIST_EXTENSIONS:
                lists.append(rel)
    return sorted(videos), sorted(lists)


def _remove_stale_temporaries(dst_dir: str, outputs: Sequence[str]) -> int:
    """Remove the temporary files (`.<name>.<random>.tmp`) a killed run left beside our outputs."""
    by_folder: dict[str, set[str]] = {}
    for rel in outputs:
        by_folder.setdefault(os.path.join(dst_dir, os.path.dirname(rel)), set()).add(os.path.basename(rel))
    removed = 0
    for folder, names in by_folder.items():
        if not os.path.isdir(folder):
            continue
        for entry in os.listdir(folder):
            base = entry[1:-len(".tmp")].rsplit(".", 1)[0]
            if entry.startswith(".") and entry.endswith(".tmp") and base in names and is_temp_of(entry, base):
                os.remove(os.path.join(folder, entry))
                removed += 1
    return removed


def _check_output_folders(dst_dir: str, src_real: str, outputs: Sequence[str]) -> None:
    """Refuse output folders that resolve into the source folder (through a link inside `dst_dir`)."""
    for folder in sorted({os.path.join(dst_dir, os.path.dirname(rel)) for rel in outputs}):
        if _inside(os.path.realpath(folder), src_real):
            raise ReencodeError(f"output folder {folder} leads into the source folder (a link?); the source is "
                                "never written to")


def _plan(src_dir: str, dst_dir: str, videos: Sequence[str], report: ReencodeReport) -> list[tuple[str, str, str]]:
    """(source, output, relative source) of the videos to convert; counts skipped ones and clashes."""
    tasks, owner = [], {}
    for rel in videos:
        out = output_name(rel)
        dst = os.path.join(dst_dir, out)
        if out in owner:
            report.failed[rel] = f"its copy {out} would overwrite that of {owner[out]}; rename one of them"
            continue
        owner[out] = rel
        if os.path.isfile(dst):  # a final name is only ever given to a complete copy
            report.skipped += 1
            report.bytes_before += os.path.getsize(os.path.join(src_dir, rel))
            report.bytes_after += os.path.getsize(dst)
        else:
            tasks.append((os.path.join(src_dir, rel), dst, rel))
    return tasks


def _convert_one(src: str, dst: str, rel: str, settings: EncodeSettings) -> tuple[str, str, str, int, int]:
    """(relative source, "done" / "failed" / "no room", reason, bytes before, bytes after): runs in a worker."""
    try:
        reencode_video(src, dst, settings)
    except NoRoomError as e:
        return rel, "no room", str(e), 0, 0
    except UnconvertibleVideoError as e:
        return rel, "failed", " ".join(str(e).split()), 0, 0
    return rel, "done", "", os.path.getsize(src), os.path.getsize(dst)


def _results(tasks: Sequence[tuple], settings: EncodeSettings, workers: int) -> Iterator[tuple]:
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield _convert_one(*task, settings)
        return
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
        futures = [pool.submit(_convert_one, *task, settings) for task in tasks]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:  # stopped early (full disk, Ctrl-C): drop the files not started, wait for the running ones
            for future in futures:
                future.cancel()


def _convert_all(tasks: Sequence[tuple], settings: EncodeSettings, workers: int, progress: bool,
                 report: ReencodeReport) -> None:
    from tqdm import tqdm

    results = _results(tasks, settings, workers)
    try:
        with tqdm(total=len(tasks), unit="video", desc="reencode", disable=not progress) as bar:
            for rel, status, reason, before, after in results:
                bar.update()
                if status == "no room":
                    raise NoRoomError(reason)
                if status == "failed":
                    report.failed[rel] = reason
                    continue
                report.done += 1
                report.bytes_before += before
                report.bytes_after += after
    finally:
        results.close()


def _write_failures(dst_dir: str, failed: dict[str, str]) -> str | None:
    """`dst_dir/reencode_failures.txt`, one `path<TAB>reason` line per failed source; removed when none failed."""
    path = os.path.join(dst_dir, FAILURES_FILE)
    if not failed:
        if os.path.exists(path):
            os.remove(path)
        return None
    atomic_write_text(path, "".join(f"{rel}\t{reason}\n" for rel, reason in sorted(failed.items())))
    return path


def available_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def reencode_tree(src_dir: str, dst_dir: str, settings: EncodeSettings = EncodeSettings(), workers: int = 1,
                  progress: bool = False) -> ReencodeReport:
    """Mirror the videos under `src_dir` into `dst_dir` as re-encoded `.mp4` copies; see the module's doc.

    `workers` processes convert files in parallel (each with cores / workers threads unless
    `settings.threads` says otherwise); `progress` shows a progress bar. Raises `ReencodeError` for a
    missing or empty source folder and for overlapping folders, `NoRoomError` when the disk is full.
    """
    start = time.monotonic()
    src_real = _check_folders(src_dir, dst_dir)
    videos, lists = _scan(src_dir)
    if not videos:
        raise ReencodeError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) under {src_dir}")
    if workers < 1:
        raise ReencodeError(f"workers must be at least 1, got {workers}")
    if workers > 1 and settings.threads == 0:
        settings = replace(settings, threads=max(1, available_cores() // workers))
    outputs = [output_name(v) for v in videos] + lists + [FAILURES_FILE]
    _check_output_folders(dst_dir, src_real, outputs)
    os.makedirs(dst_dir, exist_ok=True)
    _remove_stale_temporaries(dst_dir, outputs)
    report = ReencodeReport()
    tasks = _plan(src_dir, dst_dir, videos, report)
    _convert_all(tasks, settings, workers, progress, report)
    report.lists = _copy_lists(src_dir, dst_dir, lists)
    report.failures_file = _write_failures(dst_dir, report.failed)
    report.seconds = time.monotonic() - start
    return report


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def format_report(report: ReencodeReport) -> str:
    """The end-of-run summary: videos done / skipped / failed, bytes before and after, time."""
    failed = f"{len(report.failed)} failed"
    if report.failures_file:
        failed += f" (listed in {report.failures_file})"
    lines = [f"videos: {report.total}: {report.done} done, {report.skipped} skipped (already converted), {failed}"]
    size = f"bytes: {_megabytes(report.bytes_before)} before, {_megabytes(report.bytes_after)} after"
    if report.bytes_before:
        size += f" ({report.bytes_after / report.bytes_before:.2f}x)"
    lines.append(size + " (videos with a copy)")
    if report.lists:
        lists = ", ".join(report.lists[:5]) + (", ..." if len(report.lists) > 5 else "")
        lines.append(f"lists copied: {len(report.lists)} ({lists})")
    lines.append(f"time: {report.seconds:.1f} s")
    return "\n".join(lines)
