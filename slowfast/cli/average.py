"""Average epoch checkpoints (swa, gwa, bwa, ewa) or patch one checkpoint with raw CLIP weights.

Averaging (the default mode), e.g. the paper's uniform average of epochs 2..22:

    python weight_average_tool.py --source-dir OUTPUT_DIR/checkpoints --output-dir D \\
        --start 2 --end 22 --methods swa gwa bwa ewa

writes D/swa_2_22.pth, D/gwa_2_22.pth, ... (named after the first and last epoch really averaged) in one
streaming pass over the checkpoints (memory: about
one model state per method plus one checkpoint, whatever the number of checkpoints). Test the result
with `TEST.CUSTOM_LOAD True TEST.CUSTOM_LOAD_FILE D/swa_2_22.pth`.

Patching (weight-space ensemble with raw CLIP, theta = r * theta_CLIP + (1 - r) * theta on CLIP keys):

    python weight_average_tool.py --patch D/swa_2_22.pth --clip ViT-B-16.pt --ratio 0.5 --output P.pth
"""

from __future__ import annotations

import argparse

from slowfast.errors import cli_main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    avg = p.add_argument_group("averaging (default mode)")
    avg.add_argument("--source-dir", help="folder of the engine's checkpoint_epoch_NNNNN.pyth files (OUTPUT_DIR/checkpoints); "
                                          "other files are ignored with a note")
    avg.add_argument("--output-dir", help="folder for {method}_{start}_{end}.pth (created)")
    avg.add_argument("--start", type=int, default=None, help="first epoch id (1-based, from the file name) to average, inclusive (default: the first present)")
    avg.add_argument("--end", type=int, default=None, help="last epoch id to average, inclusive (default: the last present)")
    avg.add_argument("--methods", nargs="+", default=["swa"], metavar="M",
                     help="one or more of swa (uniform), gwa (Gaussian over epoch ids), bwa (Beta over ranks), "
                          "ewa (exponential moving average); all in one pass (default: swa)")
    avg.add_argument("--keys", default="all", metavar="{all,clip}",
                     help="all: every model.* and projector_v.* float key, adapters included; clip: only the OpenAI "
                          "CLIP keys of the student (model.*), the rest carried over from the last checkpoint. "
                          "raw_model.* (frozen teacher) is always carried over unchanged (default: all)")
    avg.add_argument("--include-raw-clip", metavar="PATH", default=None,
                     help="OpenAI CLIP file (TorchScript archive or state dict) averaged in as epoch 0 for the CLIP keys; "
                          "keys it lacks are averaged over the checkpoints with their weights rescaled to sum 1; "
                          "outputs are then named {method}_{start}_{end}_rawclip.pth")
    avg.add_argument("--gauss-mu", type=float, default=15.0, help="gwa: mean of the Gaussian over epoch ids (default 15)")
    avg.add_argument("--gauss-sigma", type=float, default=10.0,
                     help="gwa: standard deviation, > 0 (default 10; a tiny one puts all weight on the epoch nearest mu)")
    avg.add_argument("--beta-a", type=float, default=0.5, help="bwa: Beta a, evaluated at (rank+0.5)/n over the n present files (default 0.5)")
    avg.add_argument("--beta-b", type=float, default=0.5, help="bwa: Beta b (default 0.5)")
    avg.add_argument("--ewa-decay", type=float, default=0.9, help="ewa: theta <- d*theta + (1-d)*theta_i in id order (default 0.9)")
    avg.add_argument("--skip-unreadable", action="store_true",
                     help="average the readable checkpoints of the range and note the unreadable ones (default: an "
                          "unreadable checkpoint inside the range stops the tool, naming it)")
    avg.add_argument("--dry-run", action="store_true", help="print the files and each method's weights; write nothing")
    pat = p.add_argument_group("patching (selected by --patch)")
    pat.add_argument("--patch", metavar="CKPT", default=None, help="checkpoint or averaged file whose model_state is patched")
    pat.add_argument("--clip", metavar="PATH", default=None, help="raw CLIP weights (TorchScript archive or state dict)")
    pat.add_argument("--ratio", type=float, default=None, help="r in [0, 1]: 0 = the checkpoint, 1 = raw CLIP")
    pat.add_argument("--output", metavar="OUT", default=None, help="patched file to write (atomically)")
    return p


@cli_main("interrupted: nothing half-written is kept; run the command again")
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Imported once the arguments are parsed: torch takes seconds to load, --help and a wrong flag do not wait.
    from slowfast.averaging import SchemeParams, format_plan, patch_checkpoint, plan_averaging, run_averaging

    def log(message: str) -> None:
        print(message, flush=True)

    if args.patch is not None:
        if args.source_dir is not None or args.output_dir is not None:
            parser.error("--patch patches one file: give --clip, --ratio and --output, not --source-dir/--output-dir")
        missing = [f for f, v in (("--clip", args.clip), ("--ratio", args.ratio), ("--output", args.output)) if v is None]
        if missing:
            parser.error(f"--patch needs {', '.join(missing)}")
        patch_checkpoint(args.patch, args.clip, args.ratio, args.output)
        log(f"wrote {args.output} (ratio {args.ratio})")
        return 0
    if args.source_dir is None or (args.output_dir is None and not args.dry_run):
        parser.error("averaging needs --source-dir and --output-dir (or --patch CKPT for patching)")
    params = SchemeParams(args.gauss_mu, args.gauss_sigma, args.beta_a, args.beta_b, args.ewa_decay)
    plan = plan_averaging(args.source_dir, args.methods, args.start, args.end, args.keys, args.include_raw_clip,
                          params,
                          skip_unreadable=args.skip_unreadable)
    for note in plan.notes:
        log(note)
    log(format_plan(plan))
    if args.dry_run:
        log("dry run: nothing written")
        return 0
    run_averaging(plan, args.output_dir, log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
