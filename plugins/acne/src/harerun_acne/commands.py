"""``harerun train acne-lesions``: train the lesion-centre network the acne detector runs.

Registered by :func:`harerun_acne.plugin.register_commands`. TensorFlow and the
training code (``pip install harerun-acne[train]``) are imported only when the
command runs.
"""

from __future__ import annotations

import argparse
import importlib.util

from harerun.commands import add_training_arguments, missing_labels, refuse, run_training, training_options

HELP = "acne lesion-centre network for the acne detector (plugin harerun-acne)"
DESCRIPTION = (
    "Frame every photo with the engine's face stage (cached), fit on 'train' minus "
    "photos held out by group, pick the epoch and the peak threshold on those, report 'val'; "
    "write the .tflite, <out>.sha256 and <stem>.metrics.json."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_training_arguments(
        p,
        out=".tflite",
        epochs=40,
        lr=2e-3,
        width_help="channels at 1/2 resolution (x2, x3, x4 deeper)",
        lr_help="peak learning rate (cosine decay)",
    )
    p.add_argument("--steps-per-epoch", type=int, default=80)
    p.add_argument("--holdout", type=int, default=100, help="train photos held out (by group) for epoch and threshold")
    p.add_argument("--eval-every", type=int, default=5, help="epochs between held-out evaluations")
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop after the epoch that crosses this wall-clock budget (the best evaluated epoch is kept)",
    )


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("tensorflow") is None:
        return refuse(
            "training needs TensorFlow: TensorFlow is not installed; pip install 'harerun-acne[train]' adds it"
        )
    if why := missing_labels(args.data, "labels.csv, images/ and lesions.json"):
        return refuse(why)
    if args.out.suffix.lower() != ".tflite":
        return refuse(f"--out {args.out} must end in .tflite")
    if min(args.epochs, args.steps_per_epoch, args.batch_size, args.eval_every) < 1:
        return refuse("--epochs, --steps-per-epoch, --batch-size and --eval-every must be at least 1")

    from harerun_acne.training import TrainConfig, train

    cfg = TrainConfig(
        **training_options(args),
        steps_per_epoch=args.steps_per_epoch,
        holdout=args.holdout,
        eval_every=args.eval_every,
        max_minutes=args.max_minutes,
    )
    return run_training(train, cfg)
