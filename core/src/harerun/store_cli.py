"""``harerun models ...``: the model store on the command line.

The main CLI calls :func:`add_commands` with its argparse sub-parsers; each
command sets ``func`` to a handler ``handler(args) -> int`` (exit code:
0 ok, 2 bad input, 4 model unavailable / S3 problem). Training a model is a
command of the plugin that owns it (``harerun train ...``, see
``hookspecs.register_commands``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harerun.modelstore import ModelStore, ModelUnavailable

EXIT_OK, EXIT_BAD_INPUT, EXIT_UNAVAILABLE = 0, 2, 4


def add_commands(subparsers) -> None:
    """Add the ``models`` command to an argparse sub-parsers object."""
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


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m harerun.store_cli models status``) for use before the main CLI."""
    parser = argparse.ArgumentParser(prog="harerun")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
