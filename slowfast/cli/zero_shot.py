"""Zero-shot protocol: test one checkpoint on every split of a benchmark and print mean ± std.

    python tools/zero_shot.py --benchmark ucf101 --data-root data/ucf101 --video-prefix data/ucf101/videos \
        --checkpoint output/.../wa_checkpoints/swa_2_22.pth [--cfg C.yaml] [--opts KEY VALUE ...]

Benchmarks: ucf101 (3 official test lists, 101 classes), hmdb51 (3 official splits, 51 classes), k600
(the 3 ER-ZSAR splits of 160 novel classes), k400 (closed set). The classes are the official lists shipped
in label_db/: a data root's class-index file must be that list (or is taken from label_db/ when absent);
--custom-classes tests on other class lists. 3 temporal views x 1 centre crop without patching by default (the
paper's setting, --protocol stdd); --protocol original-b16 / original-l14 repeat the settings of the original
code's test scripts. Per-split outputs land in OUTPUT/<split>/, the table in OUTPUT/zero_shot_<benchmark>.{json,md}.
"""

import argparse
import os
import sys

from slowfast.errors import cli_main
from slowfast.paths import REPO_ROOT as ROOT

DEFAULT_CFG = os.path.join(ROOT, "configs", "Kinetics", "STDD_vitb16_8x16_k400.yaml")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--benchmark", required=True, choices=["ucf101", "hmdb51", "k600", "k400"], help="Which protocol.")
    p.add_argument("--data-root", required=True, help="Folder written by tools/prepare_dataset.py for this benchmark.")
    p.add_argument("--video-prefix", default="", help="Folder the CSV video paths are relative to (DATA.PATH_PREFIX).")
    p.add_argument("--checkpoint", default="",
                   help="Trained or averaged checkpoint (model_state); empty = the initial weights (raw CLIP baseline).")
    p.add_argument("--cfg", dest="cfg_files", action="append", default=[],
                   help=f"Model config (repeatable); default {os.path.relpath(DEFAULT_CFG, ROOT)}.")
    p.add_argument("--protocol", default="stdd", choices=["stdd", "original-b16", "original-l14"],
                   help="Test settings: stdd = 3 temporal views x 1 crop, no patching (the paper's protocol, default); "
                        "original-b16 / original-l14 = those of the original code's published ViT-B/16 or ViT-L/14 "
                        "test scripts for the benchmark (views, patching toward CLIP; docs/zero_shot.md).")
    p.add_argument("--views", type=int, default=None,
                   help="Temporal views per video (TEST.NUM_ENSEMBLE_VIEWS); default: the protocol's.")
    p.add_argument("--crops", type=int, default=None, choices=[1, 3],
                   help="Spatial crops per view (TEST.NUM_SPATIAL_CROPS); default: the protocol's.")
    p.add_argument("--text-aug-file", default="",
                   help="Text-feature file for DATA.TEXT_AUG; '{split}' is replaced by the split name (k600_split1 ...).")
    p.add_argument("--custom-classes", action="store_true",
                   help="Accept class-index files in the data root that are not the benchmark's official list (e.g. "
                        "random K600 splits); results are then not comparable with published numbers.")
    p.add_argument("--output-dir", default="", help="Where results go (default output/zero_shot/<benchmark>).")
    p.add_argument("--init_method", default="tcp://localhost:9999", help="torch.distributed init method for NUM_GPUS > 1.")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="Config overrides KEY VALUE ...; must come last.")
    return p


def zero_shot_config(args: argparse.Namespace):
    """The test configuration: the --cfg files, then the protocol's settings for the benchmark, then --views /
    --crops, the paths and checkpoint, then --opts (the user's overrides win)."""
    from slowfast.config import load
    from slowfast.engine.zero_shot_protocol import protocol_opts

    views = [(k, str(v)) for k, v in (("TEST.NUM_ENSEMBLE_VIEWS", args.views), ("TEST.NUM_SPATIAL_CROPS", args.crops))
             if v is not None]
    return load(args.cfg_files or [DEFAULT_CFG], [
        *protocol_opts(args.protocol, args.benchmark), *(x for kv in views for x in kv),
        "DATA.PATH_PREFIX", args.video_prefix, "TRAIN.ENABLE", "False",
        "MODEL.KEEP_RAW_MODEL", "False", "MODEL.RAW_MODEL_DISTILLATION", "False",
        "TEST.CUSTOM_LOAD", str(bool(args.checkpoint)), "TEST.CUSTOM_LOAD_FILE", args.checkpoint,
        # The training config's feature file holds the training classes: text augmentation at test
        # time needs the benchmark's own file (--text-aug-file).
        "DATA.TEXT_AUG", "False",
        *args.opts,
    ])


@cli_main("interrupted")
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from slowfast.engine.zero_shot_protocol import markdown_table, run_protocol

    output_dir = args.output_dir or os.path.join("output", "zero_shot", args.benchmark)
    summary = run_protocol(zero_shot_config(args), args.benchmark, args.data_root, output_dir, args.init_method,
                           args.text_aug_file, official_classes=not args.custom_classes, protocol=args.protocol)
    print(f"\nZero-shot {args.benchmark} ({summary['views']} views), checkpoint: {summary['checkpoint'] or 'initial weights'}")
    print(markdown_table(summary))
    print(f"results: {os.path.join(output_dir, 'zero_shot_' + args.benchmark + '.md')}")
    if summary["failed_splits"]:
        print(f"error: no readable video in split(s) {', '.join(summary['failed_splits'])}: the mean is over the "
              "other splits (see each split's unreadable_videos.txt)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
