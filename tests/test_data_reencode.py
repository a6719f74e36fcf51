"""`prepare_dataset.py reencode`: fast-loading copies of a video folder, on tiny videos encoded here.

The sources are encoded like downloaded datasets (x264 defaults: B-frames, one keyframe per 250 frames).
"""

import fcntl
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from fractions import Fraction

import av
import numpy as np
import pytest
from helpers import ROOT

from slowfast.cli.prepare_dataset import main
from slowfast.datasets import reencode

TOOL = os.path.join(ROOT, "tools", "prepare_dataset.py")
B_FRAME = 3  # av.video.frame.PictureType.B


# ---- sources -------------------------------------------------------------------------------------
def _moving_frames(n, w, h, seed=0):
    """Smooth moving content (x264 then uses B-frames, as on real videos)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    phase = rng.integers(0, 50)
    for i in range(n):
        img = np.empty((h, w, 3), np.uint8)
        img[..., 0] = (xx * 3 + 2 * (i + phase)) % 256
        img[..., 1] = (yy * 4 + i) % 256
        img[..., 2] = 90
        img[(xx - (5 + 2 * i) % w) ** 2 + (yy - h // 2) ** 2 < (h // 4) ** 2] = 250
        yield img


def make_video(path, frames=30, size=(96, 64), fps=30, pts_ms=None, audio=False, options=None, noise=0.0):
    """An H.264 video with x264's defaults; `pts_ms`: irregular timestamps in milliseconds (VFR)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    w, h = size
    tb = Fraction(1, 1000) if pts_ms is not None else Fraction(1, fps)
    with av.open(str(path), "w", options=options or {}) as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.time_base = tb
        a = c.add_stream("aac", rate=16000) if audio else None
        rng = np.random.default_rng(1)
        for i, img in enumerate(_moving_frames(frames, w, h)):
            if noise:
                img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = (pts_ms[i] if pts_ms is not None else i), tb
            c.mux(s.encode(f))
        c.mux(s.encode(None))
        if a is not None:
            for k in range(8):
                af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                af.sample_rate, af.pts = 16000, k * 1024
                c.mux(a.encode(af))
            c.mux(a.encode(None))
    return str(path)


def make_audio_only(path):
    with av.open(str(path), "w") as c:
        a = c.add_stream("aac", rate=16000)
        for k in range(8):
            af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            af.sample_rate, af.pts = 16000, k * 1024
            c.mux(a.encode(af))
        c.mux(a.encode(None))


def probe(path):
    """Stream facts and the decoded frames' (time, picture type, keyframe) of a video."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [(f.pts * s.time_base, f.pict_type, f.key_frame) for f in c.decode(s)]
        return {
            "codec": s.codec_context.name, "pix_fmt": s.codec_context.pix_fmt, "audio": len(c.streams.audio),
            "size": (s.codec_context.width, s.codec_context.height), "frames": s.frames,
            "average_rate": s.average_rate, "index_keyframes": [e.is_keyframe for e in s.index_entries],
            "decoded": frames,
        }


def run(src, dst, *flags):
    return main(["reencode", str(src), str(dst), "--workers", "1", "--no-progress", *flags])


def tree(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def digest(folder):
    """Every path under `folder` (links included) with the hash of its bytes."""
    out = {}
    for d, dirs, fs in os.walk(folder):
        for name in fs + dirs:
            p = os.path.join(d, name)
            if os.path.islink(p) or not os.path.isfile(p):
                out[os.path.relpath(p, folder)] = os.readlink(p) if os.path.islink(p) else "dir"
            else:
                out[os.path.relpath(p, folder)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


# ---- layout, size, keyframes, timing -------------------------------------------------------------
def test_copies_mirror_the_source_layout_as_h264_mp4_without_audio(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_video(src / "a.mp4", audio=True)
    make_video(src / "sub" / "b.mkv")
    make_video(src / "sub" / "deep" / "c.mov", frames=12)
    (src / "notes.txt").write_text("not a video\n")
    assert run(src, dst) == 0
    assert tree(dst) == ["a.mp4", "sub/b.mp4", "sub/deep/c.mp4"]
    for rel in tree(dst):
        info = probe(dst / rel)
        assert (info["codec"], info["pix_fmt"], info["audio"]) == ("h264", "yuv420p", 0)
    assert probe(src / "a.mp4")["audio"] == 1


@pytest.mark.parametrize("size,short_side,expected", [
    ((340, 256), 256, (340, 256)),    # already at the size
    ((1280, 720), 256, (456, 256)),   # 455.1 rounded to the nearest even width
    ((720, 1280), 256, (256, 456)),   # portrait
    ((200, 120), 256, (200, 120)),    # never upscaled
    ((1280, 720), 0, (1280, 720)),    # 0 keeps the size
    ((97, 63), 0, (96, 62)),          # odd sizes lose a pixel (yuv420p needs even sizes)
    ((640, 480), 255, (340, 254)),    # an odd short side is made even, downwards
])
def test_output_size_scales_the_short_side_down_keeping_the_aspect_ratio(size, short_side, expected):
    assert reencode.output_size(*size, short_side) == expected


def test_short_side_option_scales_down_and_never_up(tmp_path):
    src = tmp_path / "src"
    make_video(src / "v.mp4", frames=8, size=(128, 96))
    assert run(src, tmp_path / "small", "--short-side", "48") == 0
    assert run(src, tmp_path / "default") == 0
    assert run(src, tmp_path / "keep", "--short-side", "0") == 0
    assert probe(tmp_path / "small" / "v.mp4")["size"] == (64, 48)
    assert probe(tmp_path / "default" / "v.mp4")["size"] == (128, 96)
    assert probe(tmp_path / "keep" / "v.mp4")["size"] == (128, 96)


def _keyframe_positions(info):
    return [i for i, k in enumerate(info["index_keyframes"]) if k]


def _x264_settings(path):
    """The encoder settings x264 writes into the stream (an SEI message of its first frame)."""
    with av.open(str(path)) as c:
        first = bytes(next(c.demux(video=0)))
    return first[first.index(b"options: "):].split(b"\x80")[0].decode("ascii", "replace")


def test_tune_fastdecode_turns_off_cabac_and_deblocking_and_the_default_keeps_them(tmp_path):
    make_video(tmp_path / "src" / "a.mp4", frames=6)
    assert run(tmp_path / "src", tmp_path / "plain") == 0
    assert run(tmp_path / "src", tmp_path / "fast", "--tune", "fastdecode") == 0
    plain, fast = _x264_settings(tmp_path / "plain" / "a.mp4"), _x264_settings(tmp_path / "fast" / "a.mp4")
    assert "cabac=1" in plain and "deblock=1" in plain
    assert f"crf={reencode.DEFAULT_CRF}.0" in plain and f"keyint={reencode.DEFAULT_GOP} " in plain
    assert "cabac=0" in fast and "deblock=0" in fast
    with pytest.raises(reencode.ReencodeError, match="unknown x264 tune 'fast'"):
        reencode.EncodeSettings(tune="fast")


def test_keyframes_fall_exactly_every_gop_frames_and_there_are_no_b_frames(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_video(src / "v.mp4", frames=40)
    source = probe(src / "v.mp4")
    assert B_FRAME in {t for _, t, _ in source["decoded"]} and _keyframe_positions(source) == [0]
    assert run(src, dst, "--gop", "6") == 0
    copy = probe(dst / "v.mp4")
    assert _keyframe_positions(copy) == list(range(0, 40, 6))
    assert [i for i, (_, _, key) in enumerate(copy["decoded"]) if key] == list(range(0, 40, 6))
    assert B_FRAME not in {t for _, t, _ in copy["decoded"]}


def test_default_keyframe_interval_is_the_modules_default(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_video(src / "v.mp4", frames=20)
    assert run(src, dst) == 0
    assert _keyframe_positions(probe(dst / "v.mp4")) == list(range(0, 20, reencode.DEFAULT_GOP))


def _assert_same_timing(a, b):
    assert [t for t, _, _ in a["decoded"]] == [t for t, _, _ in b["decoded"]]
    assert (a["frames"], a["average_rate"]) == (b["frames"], b["average_rate"])


def test_constant_frame_rate_timing_is_kept(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_video(src / "v.mp4", frames=45, fps=30)
    assert run(src, dst) == 0
    source, copy = probe(src / "v.mp4"), probe(dst / "v.mp4")
    _assert_same_timing(source, copy)
    assert (len(copy["decoded"]), copy["average_rate"]) == (45, 30)


def test_variable_frame_rate_timing_is_kept(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    steps = [20, 33, 50, 90, 40, 33, 120, 25]
    pts = np.concatenate([[0], np.cumsum([steps[i % len(steps)] for i in range(39)])]).tolist()
    make_video(src / "v.mp4", frames=40, pts_ms=pts)
    assert run(src, dst) == 0
    source, copy = probe(src / "v.mp4"), probe(dst / "v.mp4")
    assert len({b - a for (a, _, _), (b, _, _) in zip(source["decoded"], source["decoded"][1:])}) > 3
    _assert_same_timing(source, copy)


def test_frames_whose_timestamps_go_back_are_numbered_at_the_frame_rate(tmp_path):
    """H.264 with B-frames stored in AVI (a format without presentation timestamps) decodes with guessed,
    unordered timestamps: the copy numbers its frames at the average rate instead of failing."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_video(src / "v.avi", frames=20, fps=25)
    times = [t for t, _, _ in probe(src / "v.avi")["decoded"]]
    assert times != sorted(times)
    assert run(src, dst) == 0
    copy = probe(dst / "v.mp4")
    assert [t for t, _, _ in copy["decoded"]] == [Fraction(i, 25) for i in range(20)]
    assert (copy["frames"], copy["average_rate"]) == (20, 25)


# ---- resuming ------------------------------------------------------------------------------------
def test_rerun_skips_complete_outputs_and_removes_stale_temporaries(tmp_path, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_video(src / "a.mp4", frames=10)
    make_video(src / "sub" / "b.mkv", frames=10)
    assert run(src, dst) == 0
    before = {rel: os.stat(dst / rel).st_mtime_ns for rel in tree(dst)}
    (dst / "sub" / ".b.mp4.k3j5x9qa.tmp").write_bytes(b"half a video")  # left by a killed run
    (dst / "sub" / ".mine.tmp").write_text("not ours")
    capsys.readouterr()
    assert run(src, dst) == 0
    assert "0 done, 2 skipped" in capsys.readouterr().out
    assert {rel: os.stat(dst / rel).st_mtime_ns for rel in tree(dst) if rel != "sub/.mine.tmp"} == before
    assert tree(dst) == ["a.mp4", "sub/.mine.tmp", "sub/b.mp4"]


@pytest.mark.slow
def test_killed_run_leaves_no_partial_output_and_the_rerun_completes(tmp_path, capsys):
    """The third video is a pipe fed all its bytes but never closed: the run blocks inside that video, with
    its temporary output open, until it is killed; the rerun converts it from the real file."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    for name in ("a.mp4", "b.mp4", "d.mp4"):
        make_video(src / name, frames=12, size=(64, 48))
    # 8 s: longer than the 5 s FFmpeg reads to probe a stream, so opening it succeeds.
    data = open(make_video(tmp_path / "c.mkv", frames=120, size=(64, 48), fps=15), "rb").read()
    os.mkfifo(src / "c.mkv")
    proc = subprocess.Popen([sys.executable, TOOL, "reencode", str(src), str(dst), "--workers", "1", "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pipe = os.open(src / "c.mkv", os.O_RDWR)  # holding the write end open: the reader never sees the end
    try:
        assert fcntl.fcntl(pipe, fcntl.F_SETPIPE_SZ, 1 << 20) >= len(data)
        os.write(pipe, data)
        deadline = time.monotonic() + 600  # only a run that hangs elsewhere gets near this
        while not any(n.startswith(".c.mp4.") for n in (os.listdir(dst) if dst.is_dir() else [])):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the run never reached the third video"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        os.close(pipe)
    left = tree(dst)
    assert "c.mp4" not in left and "d.mp4" not in left and {"a.mp4", "b.mp4"} <= set(left)
    assert any(n.startswith(".c.mp4.") and n.endswith(".tmp") for n in left)
    os.remove(src / "c.mkv")
    (src / "c.mkv").write_bytes(data)
    capsys.readouterr()
    assert run(src, dst) == 0
    assert "2 done, 2 skipped (already converted), 0 failed" in capsys.readouterr().out
    assert tree(dst) == ["a.mp4", "b.mp4", "c.mp4", "d.mp4"]
    assert [len(probe(dst / n)["decoded"]) for n in tree(dst)] == [12, 12, 120, 12]


# ---- bad input -----------------------------------------------------------------------------------
def _bad_sources(src, tmp_path):
    """Each kind of file that cannot be converted, with a pattern its reason must match."""
    src.mkdir(parents=True, exist_ok=True)
    (src / "zero.mp4").write_bytes(b"")
    (src / "text.avi").write_text("hello, this is not a video\n" * 20)
    make_audio_only(src / "audio.mp4")
    os.symlink(tmp_path / "nowhere.mp4", src / "unreadable.mp4")
    whole = open(make_video(tmp_path / "whole.mp4", frames=60, size=(96, 64), noise=30), "rb").read()
    (src / "truncated.mp4").write_bytes(whole[: len(whole) // 2])  # index at the end: cut off
    streamable = make_video(tmp_path / "fast.mp4", frames=60, size=(96, 64), noise=30,
                            options={"movflags": "faststart"})
    data = open(streamable, "rb").read()
    (src / "truncated_data.mp4").write_bytes(data[: len(data) // 2])  # index first, frames cut off
    return {
        "zero.mp4": r"^empty file \(0 bytes\)$",
        "text.avi": "^not a readable video: Invalid data",
        "audio.mp4": "^audio only$",
        "unreadable.mp4": "^cannot read: No such file or directory$",
        "truncated.mp4": "^not a readable video: Invalid data",
        # single-threaded decoding reports the damage; threaded decoding conceals it, the cut packet tells
        "truncated_data.mp4": "^(decoding failed: Invalid data|truncated: the data ends inside a frame)",
    }


def test_a_truncated_file_fails_also_when_threaded_decoding_hides_the_damage(tmp_path):
    src = tmp_path / "src"
    _bad_sources(src, tmp_path)
    for threads in (1, 0):  # 0: FFmpeg picks the threads (frame threading conceals the damage)
        with pytest.raises(reencode.UnconvertibleVideoError, match="decoding failed|truncated"):
            reencode.reencode_video(str(src / "truncated_data.mp4"), str(tmp_path / f"out{threads}.mp4"),
                                    reencode.EncodeSettings(threads=threads))
        assert not (tmp_path / f"out{threads}.mp4").exists()


def _failures(dst):
    lines = (dst / reencode.FAILURES_FILE).read_text().splitlines()
    return dict(line.split("\t") for line in lines)


def test_failure_report_lists_each_bad_file_and_the_others_are_converted(tmp_path, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    expected = _bad_sources(src, tmp_path)
    make_video(src / "good.mp4", frames=10)
    make_video(src / "sub" / "good2.mkv", frames=10)
    assert run(src, dst, "--workers", "2") == 0  # in worker processes
    failures = _failures(dst)
    assert sorted(failures) == sorted(expected)
    for name, pattern in expected.items():
        assert re.search(pattern, failures[name]), (name, failures[name])
    assert [n for n in tree(dst) if n.endswith(".mp4")] == ["good.mp4", "sub/good2.mp4"]
    out = capsys.readouterr().out
    assert f"2 done, 0 skipped (already converted), {len(expected)} failed" in out and reencode.FAILURES_FILE in out


def test_exit_status_is_non_zero_only_when_every_video_failed_or_with_strict(tmp_path):
    src = tmp_path / "src"
    (src / "bad").mkdir(parents=True)
    (src / "bad" / "zero.mp4").write_bytes(b"")
    (src / "bad" / "text.mkv").write_text("not a video")
    assert run(src / "bad", tmp_path / "all_bad") == 1
    make_video(src / "good.mp4", frames=6)
    assert run(src, tmp_path / "some_bad") == 0
    assert run(src, tmp_path / "strict", "--strict") == 1
    assert len(_failures(tmp_path / "strict")) == 2 and (tmp_path / "strict" / "good.mp4").is_file()


def test_failure_report_is_removed_once_nothing_fails(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_video(src / "good.mp4", frames=6)
    (src / "later.mp4").write_bytes(b"")
    assert run(src, dst) == 0 and list(_failures(dst)) == ["later.mp4"]
    make_video(src / "later.mp4", frames=6)
    assert run(src, dst) == 0
    assert not (dst / reencode.FAILURES_FILE).exists()
    assert tree(dst) == ["good.mp4", "later.mp4"]


def test_source_folder_is_left_untouched(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _bad_sources(src, tmp_path)
    make_video(src / "good.mp4", frames=8)
    make_video(src / "sub" / "good.avi.mkv", frames=8)
    (src / "train.csv").write_text("good.mp4,0\nsub/good.avi.mkv,1\n")
    (src / "index2cls.json").write_text('{"0": "a", "1": "b"}\n')
    before = digest(src)
    assert run(src, dst) == 0
    assert run(src, dst) == 0  # the resumed run too
    assert digest(src) == before


@pytest.mark.parametrize("inside", [".", "out", "sub/out"])
def test_output_folder_equal_to_or_inside_the_source_is_refused(tmp_path, capsys, inside):
    src = tmp_path / "src"
    make_video(src / "v.mp4", frames=4)
    (src / "sub").mkdir()
    before = digest(src)
    assert run(src, src / inside) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "source folder" in err
    assert digest(src) == before


def test_source_folder_inside_the_output_folder_is_refused(tmp_path, capsys):
    src = tmp_path / "data" / "k400"
    make_video(src / "k400" / "v.mp4", frames=4)  # its copy would be data/k400/v.mp4, inside the source
    assert run(src, tmp_path / "data") == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert tree(tmp_path / "data") == ["k400/k400/v.mp4"]


def test_an_output_folder_linked_into_the_source_is_refused(tmp_path, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_video(src / "sub" / "v.mkv", frames=4)
    (src / "sub" / "train.csv").write_text("v.mkv,0\n")
    dst.mkdir()
    os.symlink(src / "sub", dst / "sub")
    before = digest(src)
    assert run(src, dst) == 2
    assert "leads into the source folder" in capsys.readouterr().err
    assert digest(src) == before


def test_missing_or_empty_source_folder_is_one_line_and_non_zero(tmp_path, capsys):
    assert run(tmp_path / "missing", tmp_path / "dst") == 2
    err = capsys.readouterr().err
    assert err == f"error: source folder not found: {tmp_path / 'missing'}\n"
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "train.csv").write_text("a.mp4,0\n")
    assert run(tmp_path / "empty", tmp_path / "dst") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no videos") and err.count("\n") == 1
    assert not (tmp_path / "dst").exists()


# ---- lists ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("line,expected", [
    ("abseiling/abc.avi,0\n", "abseiling/abc.mp4,0\n"),
    ("abseiling/abc.mkv 12\n", "abseiling/abc.mp4 12\n"),
    ("a b/c.webm,3\r\n", "a b/c.mp4,3\r\n"),          # "," found before " "
    ("a,b/c.avi 3\n", "a,b/c.mp4 3\n"),               # " " when "," does not give path,label
    ("x/y.MOV,1", "x/y.mp4,1"),
    ("x/y.mp4,1\n", "x/y.mp4,1\n"),
    ("label,youtube_id,time_start,time_end,split\n", "label,youtube_id,time_start,time_end,split\n"),
    ("notes.txt,1\n", "notes.txt,1\n"),
    ("x/y.avi,first\n", "x/y.avi,first\n"),
])
def test_list_lines_get_the_mp4_extension_where_it_changed(line, expected):
    assert reencode.rewrite_list_line(line) == expected


def test_csv_and_json_lists_are_copied_with_paths_rewritten(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_video(src / "videos" / "a.avi.mkv", frames=4)
    (src / "train.csv").write_text("videos/a.avi.mkv,0\nvideos/b.mp4,1\n")
    (src / "split1").mkdir()
    (src / "split1" / "test.csv").write_text("videos/a.avi.mkv 0\nvideos/c.webm 1\n")
    index = '{"0": "abseiling",\n "1": "zumba"}\n'
    (src / "split1" / "index2cls.json").write_text(index)
    assert run(src, dst) == 0
    assert (dst / "train.csv").read_text() == "videos/a.avi.mp4,0\nvideos/b.mp4,1\n"
    assert (dst / "split1" / "test.csv").read_text() == "videos/a.avi.mp4 0\nvideos/c.mp4 1\n"
    assert (dst / "split1" / "index2cls.json").read_text() == index
    assert (dst / "videos" / "a.avi.mp4").is_file()


def test_two_sources_with_the_same_copy_name_are_reported(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_video(src / "v.mkv", frames=4)
    make_video(src / "v.mov", frames=4)
    assert run(src, dst) == 0
    assert list(_failures(dst)) == ["v.mov"] and "v.mp4" in _failures(dst)["v.mov"]


# ---- a full disk ---------------------------------------------------------------------------------
FULL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
from slowfast.cli.prepare_dataset import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_full_disk_stops_the_run_with_one_line_and_keeps_nothing_partial(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_video(src / "a_big.mp4", frames=30, size=(320, 240), noise=40)
    make_video(src / "b_small.mp4", frames=4, size=(64, 48))
    limit = 40_000
    assert run(src, tmp_path / "unlimited") == 0
    assert os.path.getsize(tmp_path / "unlimited" / "a_big.mp4") > limit
    assert os.path.getsize(tmp_path / "unlimited" / "b_small.mp4") < limit  # it would fit: the run stopped
    env = {**os.environ, "PYTHONPATH": ROOT, "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run([sys.executable, "-c", FULL_DISK, str(limit), "reencode", str(src), str(dst), "--workers", "1",
                        "--no-progress"], capture_output=True, text=True, env=env)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: no room to write")
    assert str(dst / "a_big.mp4") in r.stderr
    assert tree(dst) == []
