"""`tools/benchmark.py data`: sources and their re-encoded copies timed in turn, on tiny settings."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_data_benchmark_times_sources_and_copies_and_reports_sizes(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), "data", "--video-dir", str(tmp_path),
                        "--num-videos", "1", "--seconds", "2", "--clips", "2", "--batch-size", "1", "--rounds", "2",
                        "--hd-clips", "0", "--workers", "0", "--modes", "train", "test"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [line for line in r.stdout.splitlines() if line.startswith("| 340x256")]
    assert [row.split(" | ")[:2] for row in rows] == [["| 340x256, source", "train"], ["| 340x256, re-encoded", "train"],
                                                      ["| 340x256, source", "test"], ["| 340x256, re-encoded", "test"]]
    copy = rows[1].split(" | ")
    assert float(copy[3]) > 0 and float(copy[6].strip("*")) > 0 and float(copy[7].rstrip(" |")) > 0
    from slowfast.datasets.reencode import DEFAULT_CRF, DEFAULT_GOP, DEFAULT_PRESET

    name = f"copy_g{DEFAULT_GOP}_crf{DEFAULT_CRF}_{DEFAULT_PRESET}_none"  # the reencode defaults
    copies = [d for d in os.listdir(tmp_path / "340x256") if d == name]
    assert copies and os.path.isfile(tmp_path / "340x256" / copies[0] / "videos" / "kinetics_like_000.mp4")
