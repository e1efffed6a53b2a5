"""``harerun models ...`` and ``harerun train ...``: the model store and training on the command line.

The main CLI calls :func:`add_commands` with its argparse sub-parsers; each
command sets ``func`` to a handler ``handler(args) -> int`` (exit code:
0 ok, 2 bad input, 4 model unavailable / S3 problem).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harerun.modelstore import ModelStore, ModelUnavailable

EXIT_OK, EXIT_BAD_INPUT, EXIT_UNAVAILABLE = 0, 2, 4

TRAIN_TASKS = ("acne-grade", "acne-lesions")


def add_commands(subparsers) -> None:
    """Add the ``models`` and ``train`` commands to an argparse sub-parsers object."""
    models = subparsers.add_parser(
        "models",
        help="list, check, fetch and publish named models (local dir -> cache -> S3)",
        description="Named, versioned model files. Configuration: HARERUN_MODEL_DIR, HARERUN_CACHE_DIR, "
        "HARERUN_S3_BUCKET, HARERUN_S3_PREFIX, HARERUN_S3_ENDPOINT_URL; AWS credentials from boto3's chain.",
    )
    msub = models.add_subparsers(dest="models_command", metavar="{list,status,fetch,publish}")
    models.set_defaults(func=lambda args: (models.print_help(), EXIT_BAD_INPUT)[1])

    p = msub.add_parser("list", help="models in the manifest(s) and where each is available")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = msub.add_parser("status", help="availability of models, with the reason when unavailable")
    p.add_argument("specs", nargs="*", metavar="NAME[@VERSION]", help="models to check (default: all listed)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_status)

    p = msub.add_parser("fetch", help="download a model from S3 into the cache (verified by SHA-256)")
    p.add_argument("spec", metavar="NAME[@VERSION]")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_fetch)

    p = msub.add_parser("publish", help="upload a model file to S3 with its SHA-256")
    p.add_argument("file", type=Path)
    p.add_argument("--name", required=True, help="model name, e.g. acne-grade")
    p.add_argument("--version", required=True, help="model version, e.g. 1")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_publish)

    train = subparsers.add_parser(
        "train",
        help="train a model (needs the plugin that owns it)",
        description="Train a model from a labelled data folder.",
    )
    tsub = train.add_subparsers(dest="train_task", metavar="{acne-grade,acne-lesions}")
    train.set_defaults(func=lambda args: (train.print_help(), EXIT_BAD_INPUT)[1])
    p = tsub.add_parser(
        "acne-grade",
        help="acne severity grade 0-3 (plugin harerun-ml-classifier)",
        description="Fit on the 'train' split, select the epoch on 'val', write the model, "
        "<out>.sha256, a model card <stem>.md and <stem>.metrics.json.",
    )
    p.add_argument("--data", type=Path, required=True, help="folder with labels.csv, images/ and lesions.json")
    p.add_argument("--out", type=Path, required=True, help="model file to write (.keras or .h5)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--input-size", type=int, default=128, help="network input side, multiple of 32 dividing 512")
    p.add_argument("--width", type=int, default=16, help="channels of the first block")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    p.add_argument("--bn-momentum", type=float, default=0.99, help="batch-norm moving-average momentum")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="CPU threads for TensorFlow")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images per split (smoke test)")
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
    p.set_defaults(func=cmd_train_acne_grade)

    p = tsub.add_parser(
        "acne-lesions",
        help="acne lesion-centre network for the acne detector (plugin harerun-acne)",
        description="Frame every photo with the engine's face stage (cached), fit on 'train' minus "
        "photos held out by group, pick the epoch and the peak threshold on those, report 'val'; "
        "write the .tflite, <out>.sha256 and <stem>.metrics.json.",
    )
    p.add_argument("--data", type=Path, required=True, help="folder with labels.csv, images/ and lesions.json")
    p.add_argument("--out", type=Path, required=True, help="model file to write (.tflite)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--steps-per-epoch", type=int, default=80)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--width", type=int, default=16, help="channels at 1/2 resolution (x2, x3, x4 deeper)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (cosine decay)")
    p.add_argument("--holdout", type=int, default=100, help="train photos held out (by group) for epoch and threshold")
    p.add_argument("--eval-every", type=int, default=5, help="epochs between held-out evaluations")
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop after the epoch that crosses this wall-clock budget (the best evaluated epoch is kept)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="CPU threads for TensorFlow")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images per split (smoke test)")
    p.set_defaults(func=cmd_train_acne_lesions)


def _store() -> ModelStore:
    return ModelStore.from_env()


def _print_rows(rows: list[dict]) -> None:
    for r in rows:
        label = f"{r['name']}@{r['version']}" if r.get("version") else r["name"]
        if r["available"]:
            size = f"{r['size_bytes']:,} B" if r.get("size_bytes") is not None else "?"
            print(
                f"{label:28s} available  {r['source']:5s}  {size:>12s}  sha256 {str(r['sha256'])[:16]}…"
                + (f"  ({r['reason']})" if r.get("reason") else "")
            )
        else:
            print(f"{label:28s} UNAVAILABLE  {r['reason']}")


def cmd_list(args) -> int:
    store = _store()
    rows = store.status()
    if args.json:
        print(
            json.dumps(
                {
                    "manifests": [str(p) for p in store.manifest_paths if p.is_file()],
                    "model_dir": str(store.model_dir) if store.model_dir else None,
                    "cache_dir": str(store.cache_dir),
                    "s3_bucket": store.s3_bucket,
                    "models": rows,
                },
                indent=2,
            )
        )
    else:
        print(
            f"models dir: {store.model_dir or '-'}   cache: {store.cache_dir}   "
            f"s3: {('s3://' + store.s3_bucket + '/' + store.s3_prefix) if store.s3_bucket else '-'}"
        )
        if not rows:
            print("no models listed (no models.yaml found)")
        _print_rows(rows)
    return EXIT_OK


def cmd_status(args) -> int:
    rows = _store().status(args.specs or None)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_rows(rows)
    bad_spec = any(r["version"] is None and not r["available"] and "not a model spec" in str(r["reason"]) for r in rows)
    if bad_spec:
        return EXIT_BAD_INPUT
    return EXIT_OK if all(r["available"] for r in rows) else EXIT_UNAVAILABLE


def _fail(exc: ModelUnavailable, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"error": exc.code, "message": exc.message, "reason": exc.reason}))
    else:
        print(f"error: {exc.message}", file=sys.stderr)
    return exc.exit_code


def cmd_fetch(args) -> int:
    try:
        m = _store().fetch(args.spec)
    except ModelUnavailable as exc:
        return _fail(exc, args.json)
    if args.json:
        print(json.dumps(m.to_dict(), indent=2))
    else:
        print(f"{m.spec}: {m.path} ({m.size_bytes:,} B, sha256 {m.sha256}, from {m.source})")
    return EXIT_OK


def cmd_publish(args) -> int:
    if not args.file.is_file():
        print(f"error: {args.file} is not a file", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        info = _store().publish(args.file, name=args.name, version=args.version)
    except ModelUnavailable as exc:
        return _fail(exc, args.json)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"published {info['uri']} ({info['size_bytes']:,} B, sha256 {info['sha256']})")
        print("manifest entry for models.yaml:")
        print(
            f'  - name: {info["name"]}\n    version: "{info["version"]}"\n    file: {info["file"]}\n'
            f"    sha256: {info['sha256']}\n    size_bytes: {info['size_bytes']}"
        )
    return EXIT_OK


def _run_training(train, cfg) -> int:
    """Run a plugin's ``train(cfg)``; a missing or malformed data folder is bad input (exit 2)."""
    try:
        train(cfg)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def cmd_train_acne_grade(args) -> int:
    try:
        from harerun_ml_classifier.training import TrainConfig, train
    except ImportError:
        print(
            "error: training acne-grade needs the ml_classifier plugin: pip install -e plugins/ml_classifier "
            "(or harerun-ml-classifier)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if not (args.data / "labels.csv").is_file():
        print(
            f"error: {args.data} has no labels.csv; --data must be a folder with labels.csv and images/ "
            f"(e.g. ../shared/data/acne)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if args.out.suffix.lower() not in (".keras", ".h5"):
        print(f"error: --out {args.out} must end in .keras or .h5", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.input_size % 32 or args.epochs < 1 or args.batch_size < 1:
        print("error: --input-size must be a multiple of 32; --epochs and --batch-size at least 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    cfg = TrainConfig(
        data=args.data,
        out=args.out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        input_size=args.input_size,
        width=args.width,
        learning_rate=args.lr,
        seed=args.seed,
        bn_momentum=args.bn_momentum,
        threads=args.threads,
        limit=args.limit,
        tflite=not args.no_tflite,
        framing=args.framing,
        cache_dir=args.cache_dir,
    )
    return _run_training(train, cfg)


def cmd_train_acne_lesions(args) -> int:
    try:
        from harerun_acne.training import TrainConfig, train
    except ImportError:
        print("error: training acne-lesions needs the acne plugin: pip install -e plugins/acne", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not (args.data / "labels.csv").is_file():
        print(
            f"error: {args.data} has no labels.csv; --data must be a folder with labels.csv, images/ and "
            f"lesions.json (e.g. ../shared/data/acne)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if args.out.suffix.lower() != ".tflite":
        print(f"error: --out {args.out} must end in .tflite", file=sys.stderr)
        return EXIT_BAD_INPUT
    if min(args.epochs, args.steps_per_epoch, args.batch_size, args.eval_every) < 1:
        print("error: --epochs, --steps-per-epoch, --batch-size and --eval-every must be at least 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    cfg = TrainConfig(
        data=args.data,
        out=args.out,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        width=args.width,
        learning_rate=args.lr,
        holdout=args.holdout,
        eval_every=args.eval_every,
        max_minutes=args.max_minutes,
        seed=args.seed,
        threads=args.threads,
        limit=args.limit,
    )
    return _run_training(train, cfg)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m harerun.store_cli models status``) for use before the main CLI."""
    parser = argparse.ArgumentParser(prog="harerun")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
