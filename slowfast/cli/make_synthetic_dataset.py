"""Write the synthetic dataset (the embedded default) or Kinetics-like benchmark videos.

    python tools/make_synthetic_dataset.py --out data/synthetic
    python tools/make_synthetic_dataset.py --out data/kinetics_like --kinetics-like --num-videos 4

The default writes `OUT/{train,val,test}.csv`, `OUT/index2cls.json`, `OUT/videos/...` and the zero-shot
split `OUT/zero_shot/{test.csv,index2cls.json}`: squares moving left/right/up/down (training classes) and
squares growing/shrinking, bars rotating clockwise/anticlockwise (zero-shot classes); the classes of each
set differ only in the order of the frames. Same seed, same files.
"""

import argparse
import os
import time

from slowfast.datasets.synthetic import (
    SyntheticSpec,
    make_kinetics_like,
    make_synthetic_dataset,
)
from slowfast.errors import cli_main
from slowfast.utils.atomic import atomic_write_text


def parse_args(argv=None) -> argparse.Namespace:
    d = SyntheticSpec()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default %(default)s)")
    p.add_argument("--train-per-class", type=int, default=d.train_per_class, help="training clips per class")
    p.add_argument("--val-per-class", type=int, default=d.val_per_class, help="validation clips per class")
    p.add_argument("--test-per-class", type=int, default=d.test_per_class, help="test clips per class")
    p.add_argument("--zero-shot-per-class", type=int, default=d.zero_shot_per_class,
                   help="clips per zero-shot class (OUT/zero_shot/test.csv)")
    p.add_argument("--size", type=int, default=d.size, help="frame side in pixels, even (default %(default)s)")
    p.add_argument("--frames", type=int, default=d.frames, help="frames per clip (default %(default)s)")
    p.add_argument("--fps", type=int, default=d.fps, help="frame rate of the files (default %(default)s)")
    p.add_argument("--noise", type=float, default=d.noise, help="Gaussian noise sigma on [0, 1] pixels")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="encoding processes (default %(default)s); the output does not depend on it")
    p.add_argument("--kinetics-like", action="store_true",
                   help="instead write Kinetics-sized benchmark videos (340x256, 10 s, 30 fps) and a test.csv")
    p.add_argument("--num-videos", type=int, default=4, help="videos for --kinetics-like (default %(default)s)")
    return p.parse_args(argv)


@cli_main()
def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.time()
    if args.kinetics_like:
        rels = make_kinetics_like(args.out, num_videos=args.num_videos, seed=args.seed)
        atomic_write_text(os.path.join(args.out, "test.csv"), "".join(f"{r},0\n" for r in rels))
        print(f"wrote {len(rels)} Kinetics-like videos to {args.out} in {time.time() - start:.1f} s")
        return 0
    spec = SyntheticSpec(
        seed=args.seed, train_per_class=args.train_per_class, val_per_class=args.val_per_class,
        test_per_class=args.test_per_class, zero_shot_per_class=args.zero_shot_per_class, size=args.size,
        frames=args.frames, fps=args.fps, noise=args.noise,
    )
    summary = make_synthetic_dataset(args.out, spec, workers=args.workers)
    counts = ", ".join(f"{k} {v}" for k, v in summary.items())
    print(f"wrote the synthetic dataset to {args.out} ({counts} clips) in {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
