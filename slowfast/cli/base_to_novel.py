"""Base-to-novel protocol: train on each seed's 16-shot base list, test on base and novel, report B, N, HM.

    python tools/base_to_novel.py --dataset k400 --video-root datasets/kinetics400/videos --seeds 1 2 3 \
        [--cfg configs/BaseToNovel/STDD_vitb16_8x16_b2n.yaml] [--opts KEY VALUE ...]
    python tools/base_to_novel.py --dataset hmdb51 --video-root datasets/hmdb51/videos \
        --test-only --checkpoint output/.../swa_2_22.pth
    python tools/base_to_novel.py --dataset ssv2 --video-root datasets/ssv2/videos --check-only

Datasets: k400 (seeds 1-3), hmdb51 (seed 1), ucf101 (seed 1), ssv2 (seeds 1-3; horizontal flips off unless a
--cfg file sets DATA.RANDOM_FLIP, as the parity recipe does), with the splits shipped in label_db/base_to_novel/;
any other name with --splits DIR (same file layout).
Every listed video is looked up under --video-root first (Kinetics files may end in _<start>_<end>); the
missing ones are listed in OUTPUT/missing_videos.txt and nothing runs unless --allow-missing.
Each seed trains in OUTPUT/seed<N>/ and resumes there if interrupted (run the same command again), then the
average of its epochs 2..last is tested (--test-checkpoint last: the last epoch); the table lands in
OUTPUT/b2n_<dataset>.{json,md}. See docs/base_to_novel.md.
"""

import argparse
import os

from slowfast.errors import UserError, cli_main
from slowfast.paths import REPO_ROOT as ROOT

DEFAULT_CFG = os.path.join(ROOT, "configs", "BaseToNovel", "STDD_vitb16_8x16_b2n.yaml")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--dataset", required=True,
                   help="k400, hmdb51, ucf101 or ssv2 (shipped splits), or a name for the lists given with --splits")
    p.add_argument("--splits", default="", help="folder of base_classes.txt, novel_classes.txt, train_seed<N>.csv, "
                                                "test_base.csv, test_novel.csv (default: the shipped splits)")
    p.add_argument("--video-root", required=True, help="folder the listed video names are relative to")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="training seeds (default: all of the dataset)")
    p.add_argument("--cfg", dest="cfg_files", action="append", default=[],
                   help=f"model and training config (repeatable); default {os.path.relpath(DEFAULT_CFG, ROOT)}")
    p.add_argument("--test-only", action="store_true", help="do not train: test --checkpoint on base and novel")
    p.add_argument("--checkpoint", default="",
                   help="with --test-only: checkpoint (model_state) to test; empty = the initial weights (raw CLIP)")
    p.add_argument("--check-only", action="store_true",
                   help="only look the listed videos up and write the lists (and the report of missing ones)")
    p.add_argument("--allow-missing", action="store_true", help="run without the listed videos that are missing")
    p.add_argument("--match-youtube-id", action="store_true",
                   help="match files on the YouTube id (on by default for k400)")
    p.add_argument("--test-checkpoint", choices=["average", "last"], default="average",
                   help="weights each trained seed is tested with: average = the uniform average of its epochs 2..last "
                        "(written to OUTPUT/seed<N>/wa_checkpoints/, as the original's scripts tested), last = its "
                        "last checkpoint")
    p.add_argument("--base-class-text", default="",
                   help="class description JSON for the base test classifier, index -> text (FROSTER's "
                        "train_rephrased.json, 'Name: In this video, ...'); default: the class names")
    p.add_argument("--novel-class-text", default="",
                   help="class description JSON for the novel test classifier (FROSTER's test_rephrased.json)")
    p.add_argument("--text-aug-file", default="",
                   help="text-feature file for DATA.TEXT_AUG; '{split}' is replaced by base or novel")
    p.add_argument("--output-dir", default="", help="where results go (default output/base_to_novel/<dataset>)")
    p.add_argument("--init_method", default="tcp://localhost:9999", help="torch.distributed init method for NUM_GPUS > 1")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides KEY VALUE ...; must come last")
    return p


def _config(args: argparse.Namespace, flips: bool):
    from slowfast.config import assert_and_infer_cfg, get_cfg, merge_from_file, merge_from_list

    cfg = get_cfg()
    if not flips:
        # Its classes name directions. Set before the config files: one that sets DATA.RANDOM_FLIP itself
        # (the parity recipe, as the original flipped every dataset) decides.
        merge_from_list(cfg, ["DATA.RANDOM_FLIP", "False"])
    for path in args.cfg_files or [DEFAULT_CFG]:
        merge_from_file(cfg, path)
    opts = ["DATA.PATH_PREFIX", os.path.abspath(args.video_root), "DATA.PATH_LABEL_SEPARATOR", ","]
    merge_from_list(cfg, [*opts, *args.opts])  # the user's overrides win
    return assert_and_infer_cfg(cfg)


@cli_main("interrupted: the same command resumes each seed from its newest checkpoint")
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from slowfast.engine import base_to_novel_protocol as b2n

    if args.checkpoint and not args.test_only:
        raise UserError("--checkpoint is for --test-only (training runs resume from OUTPUT/seed<N>/)")
    spec = b2n.B2N_DATASETS.get(args.dataset)
    if spec is None and not args.splits:
        raise UserError(f"unknown dataset {args.dataset!r}: use one of {', '.join(b2n.B2N_DATASETS)} "
                        "or give its lists with --splits")
    youtube_ids = args.match_youtube_id or bool(spec and spec.youtube_ids)
    output_dir = args.output_dir or os.path.join("output", "base_to_novel", args.dataset)
    splits = b2n.load_splits(args.dataset, args.splits or None)
    seeds = args.seeds or sorted(splits.train)
    class_text = {"base": args.base_class_text, "novel": args.novel_class_text}
    if args.check_only:
        lists = b2n.prepare_lists(splits, args.video_root, output_dir, [] if args.test_only else seeds,
                                  youtube_ids, args.allow_missing, class_text)
        print(f"all listed videos found under {args.video_root}" if not lists.missing else
              f"{lists.missing} listed videos missing: {os.path.join(output_dir, 'missing_videos.txt')}")
        print(f"lists: {os.path.join(output_dir, 'lists')}")
        return 0
    cfg = _config(args, spec.random_flip if spec else True)
    summary = b2n.run_base_to_novel(
        cfg, splits, args.video_root, output_dir, seeds, checkpoint=args.checkpoint if args.test_only else None,
        youtube_ids=youtube_ids, allow_missing=args.allow_missing, init_method=args.init_method,
        text_aug_file=args.text_aug_file, test_checkpoint=args.test_checkpoint, class_text=class_text,
    )
    print(f"\nBase-to-novel {args.dataset} ({summary['views']} views)")
    print(b2n.markdown_b2n(summary))
    print(f"results: {os.path.join(output_dir, 'b2n_' + args.dataset + '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
