"""Helpers for the commands plugins add with ``register_commands`` (see ``hookspecs.py``).

A training command checks its data folder, builds its config and calls its trainer; what
every such command says and returns on bad input is here, once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def refuse(message: str) -> int:
    """Print ``error: message`` to stderr and return the exit code for bad input (2)."""
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def add_training_arguments(
    p: argparse.ArgumentParser,
    *,
    out: str,
    epochs: int,
    lr: float,
    width_help: str,
    lr_help: str = "peak learning rate",
) -> None:
    """The options every training command takes, in the same words: ``--data``, ``--out`` (``out``
    says which files), ``--epochs``, ``--batch-size``, ``--width``, ``--lr``, ``--seed``,
    ``--threads`` and ``--limit``. A command adds its own after these."""
    p.add_argument("--data", type=Path, required=True, help="folder with labels.csv, images/ and lesions.json")
    p.add_argument("--out", type=Path, required=True, help=f"model file to write ({out})")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--width", type=int, default=16, help=width_help)
    p.add_argument("--lr", type=float, default=lr, help=lr_help)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="CPU threads for TensorFlow")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images per split (smoke test)")


def training_options(args: argparse.Namespace) -> dict[str, Any]:
    """The values of :func:`add_training_arguments`' options as config fields (``--lr`` is
    ``learning_rate``), for ``TrainConfig(**training_options(args), <the command's own>)``."""
    names = ("data", "out", "epochs", "batch_size", "width", "seed", "threads", "limit")
    return {name: getattr(args, name) for name in names} | {"learning_rate": args.lr}


def missing_labels(data: Path, holds: str) -> str | None:
    """Why ``data`` is not a training data folder (it has no ``labels.csv``), or None.
    ``holds`` says what the folder must hold, e.g. "labels.csv and images/"."""
    if (data / "labels.csv").is_file():
        return None
    return f"{data} has no labels.csv; --data must be a folder with {holds} (e.g. ../shared/data/acne)"


def run_training(train: Callable[[Any], Any], config: Any) -> int:
    """``train(config)``; a missing or malformed data folder (FileNotFoundError, ValueError) is
    bad input: its message and exit 2, not a traceback."""
    try:
        train(config)
    except (FileNotFoundError, ValueError) as exc:
        return refuse(str(exc))
    return EXIT_OK
