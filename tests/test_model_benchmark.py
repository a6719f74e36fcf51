"""`tools/benchmark.py model` on a tiny CLIP: the table, the ratio column, the FLOP/MFU path, --append."""

from slowfast.cli.benchmark import main


def test_model_benchmark_writes_a_table_with_ratios_and_mfu(tmp_path, capsys):
    md = tmp_path / "BENCHMARKS.md"
    argv = [
        "model", "--width", "64", "--heads", "2", "--layers", "1", "--patch", "8", "--resolution", "32", "--embed-dim", "32",
        "--frames", "4", "--batch-sizes", "2", "--repeats", "1", "--warmup", "1", "--num-classes", "3",
        "--channel-fold", "8", "--types", "None", "stcross_attend", "--distill", "--peak-tflops", "1",
        "--append", "--benchmarks-md", str(md),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| None") or line.startswith("| stcross_attend")]
    assert len(rows) == 2
    none = [c.strip() for c in rows[0].split("|")[1:-1]]
    assert none[4] == "1.00" and none[5] == "1.00"  # ratios of the baseline to itself
    assert none[-1].endswith("%") and float(none[-2]) > 0  # FLOPs counted, MFU computed
    text = md.read_text()
    assert "Command: `python tools/benchmark.py model --width 64" in text and rows[1] in text
