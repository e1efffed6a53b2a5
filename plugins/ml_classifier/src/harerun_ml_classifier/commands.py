"""``harerun train acne-grade``: train the grade network on a labelled data folder.

Registered by :func:`harerun_ml_classifier.plugin.register_commands`. TensorFlow and
the training code are imported only when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harerun.commands import add_training_arguments, missing_labels, refuse, run_training, training_options

HELP = "acne severity grade 0-3 (plugin harerun-ml-classifier)"
DESCRIPTION = (
    "Fit on the 'train' split, select the epoch on 'val', write the model, "
    "<out>.sha256, a model card <stem>.md and <stem>.metrics.json."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_training_arguments(p, out=".keras or .h5", epochs=60, lr=3e-3, width_help="channels of the first block")
    p.add_argument("--input-size", type=int, default=128, help="network input side, multiple of 32 dividing 512")
    p.add_argument("--bn-momentum", type=float, default=0.99, help="batch-norm moving-average momentum")
    p.add_argument("--no-tflite", action="store_true", help="do not also write a .tflite copy")
    p.add_argument(
        "--framing",
        choices=["face_roi", "letterbox_photo"],
        default="face_roi",
        help="face_roi (default): frame each photo with the engine's face stage, as the plugin sees it at "
        "run time; letterbox_photo: the whole stored photo (how acne-grade@1 was trained)",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where the face-stage ROIs of each split are cached (default ~/.cache/harerun/train)",
    )


def run(args: argparse.Namespace) -> int:
    from harerun_ml_classifier.runtime import tensorflow_missing

    if why := tensorflow_missing():
        return refuse(f"training needs TensorFlow: {why}")
    if why := missing_labels(args.data, "labels.csv and images/"):
        return refuse(why)
    if args.out.suffix.lower() not in (".keras", ".h5"):
        return refuse(f"--out {args.out} must end in .keras or .h5")
    if args.input_size % 32 or args.epochs < 1 or args.batch_size < 1:
        return refuse("--input-size must be a multiple of 32; --epochs and --batch-size at least 1")

    from harerun_ml_classifier.training import TrainConfig, train

    cfg = TrainConfig(
        **training_options(args),
        input_size=args.input_size,
        bn_momentum=args.bn_momentum,
        tflite=not args.no_tflite,
        framing=args.framing,
        cache_dir=args.cache_dir,
    )
    return run_training(train, cfg)
