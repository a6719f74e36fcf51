"""Classify your own video(s) with your own class names, zero-shot.

    python tools/demo_net.py --cfg C.yaml --video V.mp4 --classes "juggling,skiing,surfing" \
        [--checkpoint swa_2_22.pth] [--top-k 5] [--output V_pred.mp4|.gif] [--opts KEY VALUE ...]
    python tools/demo_net.py --cfg C.yaml --video FOLDER --classes-file classes.txt --csv predictions.csv

A thin command line over `slowfast.inference.VideoClassifier`: the video goes through exactly the test
loop's sampling and preprocessing (TEST.NUM_ENSEMBLE_VIEWS temporal views x TEST.NUM_SPATIAL_CROPS crops),
so the demo and `tools/run_net.py` testing agree. Probabilities are the softmax of the mean logit over
views. Without --checkpoint the initial weights are used (raw CLIP: the frozen-CLIP zero-shot baseline).
"""

import argparse
import os

from slowfast.errors import UserError, cli_main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", dest="cfg_files", action="append", default=[], required=True,
                   help="Model config (repeatable), e.g. configs/Kinetics/TemporalCLIP_vitb16_8x16_STAdapter.yaml.")
    p.add_argument("--video", required=True, help="A video file, or a folder of videos (then see --csv).")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--classes", help='Comma-separated class names, e.g. "juggling,skiing".')
    g.add_argument("--classes-file", help="A file with one class name per line.")
    p.add_argument("--checkpoint", default="", help="Trained or averaged checkpoint (model_state); default: initial weights.")
    p.add_argument("--top-k", type=int, default=5, help="How many classes to print per video.")
    p.add_argument("--output", default="",
                   help="Write a copy of the video with the prediction drawn on it (.mp4 or .gif); single video only.")
    p.add_argument("--force", action="store_true", help="Replace an existing --output file.")
    p.add_argument("--csv", default="", help="Write the predictions to this CSV (default for a folder: FOLDER/predictions.csv).")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="Config overrides KEY VALUE ...; must come last.")
    return p


def predictions_csv_path(args) -> str:
    """--csv, else FOLDER/predictions.csv for a folder of videos, else "" (no CSV)."""
    return args.csv or (os.path.join(args.video, "predictions.csv") if os.path.isdir(args.video) else "")


def report(args, videos, preds) -> None:
    """Print the top-k per video, then write the CSV and the annotated video when asked."""
    from slowfast.engine.video_io import prediction_lines, write_annotated_video, write_predictions_csv

    for p in preds:
        print(f"\n{p.path}")
        if not p.ok:
            print(f"  could not be decoded: {p.reason}")
            continue
        for rank, (name, prob) in enumerate(p.topk, 1):
            print(f"  {rank}. {name:<40s} {prob:6.2%}")
    csv_path = predictions_csv_path(args)
    if csv_path:
        write_predictions_csv(preds, csv_path)
        print(f"\npredictions: {csv_path}")
    if args.output and preds and preds[0].ok:
        write_annotated_video(videos[0], args.output, prediction_lines(preds[0].topk))
        print(f"annotated video: {args.output}")


@cli_main()
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from slowfast.engine.common import check_top_k
    from slowfast.engine.video_io import check_annotated_output, check_predictions_csv, list_videos, parse_classes
    from slowfast.inference import VideoClassifier, check_checkpoint_file

    # Everything local is checked before the model is built (its CLIP weights may be a download).
    classes = parse_classes(args.classes, args.classes_file)
    top_k = check_top_k(args.top_k, len(classes))
    videos = list_videos(args.video)
    if args.output:
        if len(videos) != 1:
            raise UserError("--output draws on a single video; use --csv for a folder")
        check_annotated_output(args.output, videos, args.force)
    csv_path = predictions_csv_path(args)
    if csv_path:
        check_predictions_csv(csv_path, videos)
    check_checkpoint_file(args.checkpoint, f"--checkpoint {args.checkpoint}")
    clf = VideoClassifier.from_config(args.cfg_files, checkpoint=args.checkpoint or None, opts=args.opts)
    preds = clf.classify(videos, classes, top_k=top_k)
    report(args, videos, preds)
    return 0 if all(p.ok for p in preds) else 1


if __name__ == "__main__":
    raise SystemExit(main())
