"""Fine-tune the age network on UTKFace on this machine's CPU, and compare with the bundled one.

    .venv/bin/python bench/training.py [--epochs 7] [--batch-size 64] [--learning-rate 1e-3]

Steps: read ``$FACEAGE_DATASETS_DIR/utkface`` (default ``../shared/datasets/utkface``), split it
by source photo (train/val/test, seed 0), cut aligned chips with the serving code into the
TFRecord cache (``var/cache/chips``; reused on later runs), fine-tune from the bundled network
with early stopping on the validation MAE, then evaluate both networks on the same test split,
which training never saw. Prints a table; the figures go into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.tables import print_table  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--init", choices=["bundled", "scratch"], default="bundled")
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / "var" / "cache" / "chips")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from predictor.vision.age_network import AgeNetwork
    from training.datasets import read_utkface
    from training.datasets.splits import assign_splits, split_counts
    from training.pipeline.chips import ChipSource
    from training.pipeline.evaluation import evaluate_network
    from training.pipeline.fit import FitConfig, FitHooks, fit
    from training.pipeline.tfrecords import build_chip_cache, load_split
    from training.progress_bar import ProgressBar

    root = (
        args.data_dir
        or Path(os.environ.get("FACEAGE_DATASETS_DIR", REPO_ROOT.parent / "shared" / "datasets"))
        / "utkface"
    )
    records, report = read_utkface(root)
    splits = assign_splits(records, seed=0)
    print(f"UTKFace: kept {report.kept}, dropped {report.dropped}; split {split_counts(splits)}")
    sources = [ChipSource(r.path, r.age, r.gender, splits[r.path], r.face_box) for r in records]
    started = time.monotonic()
    cache_dir, manifest = build_chip_cache(sources, root, args.cache, 2, ProgressBar("chips"))
    prepare_seconds = time.monotonic() - started
    print(f"chips: {manifest['counts']} {manifest['how']} in {prepare_seconds:.0f} s")
    train, val, test = (load_split(cache_dir, manifest, s) for s in ("train", "val", "test"))

    bundled = evaluate_network(AgeNetwork.bundled(), test)
    config = FitConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        init=args.init,
        steps_per_epoch=args.steps_per_epoch,
    )
    bar = ProgressBar("training")
    steps = config.steps_per_epoch or len(train["ages"]) // config.batch_size

    def show(info: dict) -> None:
        done = (info["epoch"] - 1) * steps + info["step"]
        bar(done, steps * config.epochs, f"epoch {info['epoch']} MAE {info['mae']:.2f}")

    def epoch_line(metrics: dict) -> None:
        print(
            f"\nepoch {metrics['epoch']}: train MAE {metrics['mae']:.3f}, "
            f"val MAE {metrics['val_mae']:.3f}, lr {metrics['learning_rate']:.2e}"
        )

    with tempfile.TemporaryDirectory() as checkpoints:
        result = fit(
            train,
            val,
            config,
            Path(checkpoints),
            FitHooks(on_progress=show, on_epoch=epoch_line, report_every=10),
        )
    tuned = evaluate_network(result.network, test)

    print()
    print_table(
        ["", "value"],
        [
            ["chip preparation (18k images, 2 processes)", f"{prepare_seconds:.0f} s"],
            ["training wall time", f"{result.seconds:.0f} s ({result.seconds / 60:.1f} min)"],
            ["training images per second", f"{result.images_seen / result.seconds:.1f}"],
            ["epochs run (best)", f"{len(result.history)} ({result.best_epoch})"],
            [
                "train / val / test faces",
                f"{len(train['ages'])} / {len(val['ages'])} / {len(test['ages'])}",
            ],
        ],
    )
    print_table(
        ["test split", "MAE (years)", "CS@5", "MAE 0-12"],
        [
            [
                "bundled network",
                f"{bundled['mae']:.3f}",
                f"{bundled['cs5']:.3f}",
                f"{bundled.get('mae_children_0_12', float('nan')):.2f}",
            ],
            [
                "fine-tuned",
                f"{tuned['mae']:.3f}",
                f"{tuned['cs5']:.3f}",
                f"{tuned.get('mae_children_0_12', float('nan')):.2f}",
            ],
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
