"""The ``harerun`` command.

Exit codes: 0 ok, 1 internal error, 2 bad input (unreadable photo, invalid
pipeline, usage, overlay that cannot be written), 3 no usable face (none found or
quality gate failed). With several photos each failure is reported for its photo,
the others are still analysed, and the most serious failure decides the exit code:
1, then 2, then 3.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.metadata
import importlib.util
import json
import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harerun.errors import HareRunError, ImageError, PluginError

if TYPE_CHECKING:
    from harerun.host import PluginHost

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_NO_FACE = 0, 1, 2, 3
_SEVERITY = {EXIT_OK: 0, EXIT_NO_FACE: 1, EXIT_BAD_INPUT: 2, EXIT_INTERNAL: 3}

_REASONS = {
    errno.ENOENT: "no such file",
    errno.EACCES: "permission denied",
    errno.ELOOP: "symlink loop",
    errno.EISDIR: "is a directory",
    errno.ENOTDIR: "not a folder",
    errno.EEXIST: "not a folder",  # mkdir over a file
    errno.EROFS: "read-only file system",
}
_KINDS = {stat.S_IFIFO: "FIFO", stat.S_IFCHR: "character device", stat.S_IFBLK: "block device", stat.S_IFSOCK: "socket"}

#: Command groups that plugins add commands to (``register("train NAME", ...)``): name -> (help, description).
COMMAND_GROUPS = {
    "train": ("train a model (needs the plugin that owns it)", "Train a model from a labelled data folder."),
}


def _worse(a: int, b: int) -> int:
    return max(a, b, key=_SEVERITY.__getitem__)


def _reason(exc: OSError) -> str:
    return _REASONS.get(exc.errno) or exc.strerror or str(exc)


def _check_input(source: str) -> None:
    """Raise ImageError naming why a photo path cannot be read. (The image loader calls a folder, a FIFO,
    a device or a symlink loop "no such file", and does not catch permission errors.) Only regular files
    are opened, so a FIFO or /dev/zero is never read."""
    try:
        st = os.stat(source)
        if stat.S_ISREG(st.st_mode):
            with open(source, "rb"):
                return
    except OSError as exc:
        if exc.errno == errno.ENOENT and os.path.islink(source):
            raise ImageError(f"{source}: no such file (dangling symlink to {os.readlink(source)})") from None
        raise ImageError(f"{source}: {_reason(exc)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(f"{source}: is a directory")
    raise ImageError(f"{source}: not a regular file ({_KINDS.get(stat.S_IFMT(st.st_mode), 'special file')})")


def _failed(source: str, exc: Exception) -> tuple[dict[str, Any], int]:
    """Name one photo's failure on stderr; return its JSON record and exit code."""
    if not isinstance(exc, HareRunError):
        if (
            isinstance(exc, OSError)
            and exc.filename is not None
            and os.path.normpath(os.fspath(exc.filename)) == os.path.normpath(source)
        ):
            exc = ImageError(f"{source}: {_reason(exc)}")
        else:
            exc = HareRunError(f"internal error: {type(exc).__name__}: {exc}", code="INTERNAL_ERROR")
    message = exc.message if exc.message.startswith(source) else f"{source}: {exc.message}"
    print(f"harerun: {message}", file=sys.stderr)
    code = exc.exit_code if exc.exit_code in (EXIT_BAD_INPUT, EXIT_NO_FACE) else EXIT_INTERNAL
    return _error_json(source, exc), code


def _error_json(source: str, exc: HareRunError) -> dict[str, Any]:
    err: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if getattr(exc, "issues", None):
        err["issues"] = exc.issues
    return {"input": source, "error": err}


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False))


def _overlay_is_dir(base: str) -> bool:
    return base.endswith(("/", os.sep)) or os.path.isdir(base)


def _overlay_path(base: str, source: str, many: bool, taken: set[str]) -> Path:
    """``base`` for one photo, ``<base stem>-<photo stem><suffix>`` for several, ``DIR/<photo stem>-overlay.png``
    when ``base`` is a folder. ``-2``, ``-3``... is added to a path already taken (an input photo, or the overlay
    of another photo with the same stem such as x/a.jpg and y/a.png): nothing the user gave is overwritten."""
    out = Path(base)
    if _overlay_is_dir(base):
        out = out / f"{Path(source).stem}-overlay.png"
    elif many:
        out = out.with_name(f"{out.stem}-{Path(source).stem}{out.suffix or '.png'}")
    path, n = out, 1
    while os.path.realpath(path) in taken:
        n += 1
        path = out.with_name(f"{out.stem}-{n}{out.suffix}")
    taken.add(os.path.realpath(path))
    return path


def _table(source: str, result) -> str:
    face = result.face
    lines = [f"{source}: pipeline {result.pipeline}" + (f" (variant {result.variant})" if result.variant else "")]
    lines.append(
        f"  face {face.box} via {face.backend_used}, confidence {face.confidence:.2f}, faces found {face.count}"
    )
    if face.pose is not None:
        hidden = [name for name, z in face.zones.items() if not z.visible]
        lines.append(
            f"  {face.framing}, yaw {face.pose.yaw:+.0f}°, pitch {face.pose.pitch:+.0f}°, roll {face.pose.roll:+.0f}°"
            + (f"; not visible: {', '.join(hidden)}" if hidden else "")
        )
    issues = ", ".join(result.quality.issues) or "none"
    lines.append(f"  quality {result.quality.score:.0f}/100, issues: {issues}")
    lines.append(f"  {'detector':<16}{'status':<12}{'score':>6}  {'severity':<10}zones")
    for step_id, r in result.results.items():
        score = "-" if r.score is None else f"{r.score:.1f}"
        zones = " ".join(f"{z}={s:.0f}" for z, s in r.zones.items())
        lines.append(f"  {step_id:<16}{r.status:<12}{score:>6}  {(r.severity or '-'):<10}{zones}")
        if r.message:
            lines.append(f"  {'':<16}{r.message}")
    lines.append(f"  total {result.timings_ms.get('total', 0):.1f} ms")
    return "\n".join(lines)


def cmd_analyze(args: argparse.Namespace) -> int:
    from harerun.engine import Engine
    from harerun.overlay import SUFFIXES, draw_panels, encode_image

    if args.overlay and not _overlay_is_dir(args.overlay) and Path(args.overlay).suffix.lower() not in ("", *SUFFIXES):
        print(f"harerun: --overlay {args.overlay}: unsupported extension; use .png or .jpg", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.overlay_detector and not args.overlay:
        print("harerun: --overlay-detector needs --overlay OUT.png", file=sys.stderr)
        return EXIT_BAD_INPUT
    engine = Engine(host=args.host, pipelines_dir=args.pipelines_dir)
    worst = EXIT_OK
    outputs: list[dict[str, Any]] = []
    many = len(args.images) > 1
    taken = {os.path.realpath(source) for source in args.images}
    for source in args.images:
        try:
            _check_input(source)
            run = engine.run(source, pipeline=args.pipeline, subject_id=args.subject_id)
        except Exception as exc:  # one photo's failure is reported for that photo; the others go on
            record, code = _failed(source, exc)
            worst = _worse(worst, code)
            if args.json:
                outputs.append(record)
            continue
        unknown = [d for d in args.overlay_detector or () if d not in run.result.results]
        if args.overlay and unknown:
            print(
                f"harerun: {source}: --overlay-detector {', '.join(unknown)}: not in pipeline {run.result.pipeline}; "
                f"its detectors are {', '.join(run.result.results)}",
                file=sys.stderr,
            )
            worst = _worse(worst, EXIT_BAD_INPUT)
        elif args.overlay:
            path = _overlay_path(args.overlay, source, many, taken)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                sheet = draw_panels(run, args.overlay_detector)
                path.write_bytes(encode_image(sheet, path.suffix.lower() or ".png"))
                print(f"overlay written to {path}", file=sys.stderr)
            except OSError as exc:
                culprit = f"{exc.filename}: " if exc.filename and os.fspath(exc.filename) != str(path) else ""
                print(f"harerun: cannot write the overlay {path}: {culprit}{_reason(exc)}", file=sys.stderr)
                worst = _worse(worst, EXIT_BAD_INPUT)
        if args.json:
            outputs.append(
                {"input": source, **run.result.model_dump(mode="json")} if many else run.result.model_dump(mode="json")
            )
        else:
            print(_table(source, run.result))
    if args.json:
        _print_json(outputs if many else outputs[0])
    return worst


def cmd_batch(args: argparse.Namespace) -> int:
    from harerun.batch import run_batch

    for name in ("jobs", "threads", "row_group_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            print(f"harerun: --{name.replace('_', '-')} must be at least 1", file=sys.stderr)
            return EXIT_BAD_INPUT
    return run_batch(
        args.inputs,
        args.out,
        pipeline=args.pipeline,
        pipelines_dir=args.pipelines_dir,
        jobs=args.jobs,
        threads=args.threads,
        all_variants=args.all_variants,
        resume=args.resume,
        quiet=args.quiet,
        row_group_size=args.row_group_size,
        ray=args.ray,
        host=args.host,
    )


def cmd_report(args: argparse.Namespace) -> int:
    from harerun.report import run_report

    return run_report(
        args.results,
        args.out,
        baseline=args.baseline,
        unpaired=args.unpaired,
        seed=args.seed,
        n_resamples=args.resamples,
        title=args.title,
    )


def cmd_faces(args: argparse.Namespace) -> int:
    from harerun.engine import Engine, photo_scale
    from harerun.face.config import FaceConfig
    from harerun.face.stage import list_faces

    engine = Engine(host=args.host, pipelines_dir=args.pipelines_dir)
    # With --backend the pipeline is not needed (nor its detectors installed).
    face_cfg = FaceConfig(backend=args.backend) if args.backend else engine.pipeline(args.pipeline).spec.face
    worst = EXIT_OK
    out = []
    for source in args.images:
        try:
            _check_input(source)
            bgr, info = engine.decode(source)
            faces, backend_used, warnings = list_faces(
                bgr, face_cfg=face_cfg, host=engine.host, scale=photo_scale(bgr, info)
            )
        except Exception as exc:
            record, code = _failed(source, exc)
            worst = _worse(worst, code)
            out.append(record)
            continue
        if not faces:
            worst = _worse(worst, EXIT_NO_FACE)
        entry = {
            "input": source,
            "image": info.model_dump(),
            "backend_used": backend_used,
            "warnings": warnings,
            "faces": [
                {
                    "box": [round(v) for v in f.box],
                    "score": round(float(f.score), 4),
                    "landmarks": {k: [round(float(x), 1), round(float(y), 1)] for k, (x, y) in f.landmarks.items()},
                    "landmark_confidence": None if f.mesh is None else round(float(f.mesh.score), 4),
                }
                for f in faces
            ],
        }
        out.append(entry)
        if not args.json:
            print(f"{source}: {len(faces)} face(s) via {backend_used}")
            for f in entry["faces"]:
                print(f"  box {f['box']} score {f['score']:.2f}")
    if args.json:
        _print_json(out)
    return worst


def cmd_plugins_list(args: argparse.Namespace) -> int:
    host = args.host
    rows = []
    for name, reg in sorted(host.detectors.items()):
        params = {k: f.get_default(call_default_factory=True) for k, f in reg.cls.Params.model_fields.items()}
        rows.append({"name": name, "version": reg.cls.version, "package": reg.package, "params": params})
    if args.json:
        _print_json(rows)
        return EXIT_OK
    for row in rows:
        print(f"{row['name']} {row['version']}  (package {row['package']})")
        for k, v in row["params"].items():
            print(f"    {k} = {v!r}")
    face = ", ".join(f"{n} ({r.package})" for n, r in sorted(host.face_backends.items()))
    print(f"face backends: {face}")
    return EXIT_OK


def cmd_pipelines_validate(args: argparse.Namespace) -> int:
    from harerun.errors import PipelineError
    from harerun.pipeline import load_pipeline_file

    host = args.host
    worst = EXIT_OK
    for f in args.files:
        try:
            p = load_pipeline_file(f, host)
        except PipelineError as exc:
            worst = EXIT_BAD_INPUT
            print("\n".join(exc.problems), file=sys.stderr)
            continue
        print(f"{f}: ok ({p.name}: {', '.join(s.id for s in p.steps)})")
    return worst


def cmd_pipelines_schema(args: argparse.Namespace) -> int:
    from harerun.pipeline import json_schema

    _print_json(json_schema(args.host))
    return EXIT_OK


def cmd_pipelines_list(args: argparse.Namespace) -> int:
    from harerun.engine import Engine

    engine = Engine(host=args.host, pipelines_dir=args.pipelines_dir)
    for name in engine.pipeline_names():
        p = engine.pipeline(name)
        print(f"{name}: {p.spec.description}  [{', '.join(s.id for s in p.steps)}]")
    for name, exp in engine.experiments.experiments.items():
        variants = ", ".join(f"{v.name}={v.pipeline} ({v.weight:g})" for v in exp.variants)
        print(f"{name} (experiment): {variants}")
    return EXIT_OK


def cmd_sample_photo(args: argparse.Namespace) -> int:
    import cv2
    from skimage import data

    cv2.imwrite(args.out, data.astronaut()[:, :, ::-1])
    print(args.out)
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from harerun.doctor import diagnose, print_report

    report = diagnose(args.host, args.pipelines_dir)
    if args.json:
        _print_json(report)
    else:
        print_report(report)
    return EXIT_INTERNAL if report["problems"] else EXIT_OK


def _verbose() -> None:
    """``-v``: log records (``harerun.*`` from DEBUG) and TensorFlow's own messages on stderr."""
    import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")  # before TensorFlow's import; it is quiet otherwise
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("harerun").setLevel(logging.DEBUG)


def build_parser(host: PluginHost | None = None) -> argparse.ArgumentParser:
    """The ``harerun`` parser: the core's commands, then the commands installed plugins register
    (``hookspecs.register_commands``). ``host`` (default: a new :class:`PluginHost`) is also handed
    to the commands as ``args.host``."""
    from harerun.host import PluginHost

    host = host or PluginHost()
    parser = argparse.ArgumentParser(prog="harerun", description="Self-hosted facial skin analysis.")
    parser.set_defaults(host=host)
    parser.add_argument("--version", action="version", version=f"harerun {importlib.metadata.version('harerun')}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log to stderr, the model runtimes' own messages included"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def with_pipeline(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--pipeline", default="default", help="pipeline or experiment name, or a .yaml file (default: default)"
        )
        p.add_argument(
            "--pipelines-dir",
            default=None,
            help="folder of pipeline files (default: $HARERUN_PIPELINES_DIR or ./pipelines)",
        )

    p = sub.add_parser("analyze", help="analyse photos")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    with_pipeline(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--overlay", metavar="OUT.png", help="write one panel per detector: the face with its findings, and a legend"
    )
    p.add_argument(
        "--overlay-detector",
        action="append",
        metavar="NAME",
        help="only this detector's panel in --overlay (a step id as in the table; repeat for several)",
    )
    p.add_argument("--subject-id", help="sticky key for A/B experiments")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser(
        "batch",
        help="analyse a collection of photos into a JSONL, CSV or Parquet file",
        description="Analyse every photo the inputs name, in parallel (local processes or a Ray cluster), writing "
        "one record per photo (and variant) to --out as it finishes. A photo that fails is a record with its error "
        "code; the others go on. docs/batch.md describes the records.",
        epilog="Exit codes: 0 every photo ok; 3, 2 or 1 when some failed, as `harerun analyze` ranks them "
        "(1 internal, then 2 bad input, then 3 no usable face); 2 also for no photo found, a bad pipeline "
        "or an unusable --out; 130 after SIGINT, 143 after SIGTERM (the photos in progress are finished "
        "and written first; a second signal stops at once; --resume continues either way).",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="a photo, a folder (searched recursively for .jpg .jpeg .png .webp .bmp .tif .tiff), a quoted glob "
        "('photos/**/*.jpg'), s3://bucket/prefix/ (its image keys; endpoint $HARERUN_S3_ENDPOINT_URL or "
        "$AWS_ENDPOINT_URL), or @list.txt (one of these per line; # comments)",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="FILE.jsonl (analyze --json records), FILE.csv (flattened) or FILE.parquet (flattened, plus the "
        "record as JSON; needs harerun[parquet])",
    )
    with_pipeline(p)
    p.add_argument(
        "--all-variants",
        action="store_true",
        help="with an experiment as --pipeline: analyse every photo with every variant (one record each)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="analysis processes, or Ray actors (default: the number of CPUs, or the cluster's CPUs / --threads)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="OpenCV threads per analysis process or Ray actor (default: with --jobs 1 OpenCV's own choice, "
        "else the CPUs over --jobs; 1 with --ray)",
    )
    p.add_argument(
        "--row-group-size",
        type=int,
        default=None,
        metavar="N",
        help="Parquet: records per row group, each saved as soon as it is full: a killed run keeps all but "
        "the last < N (default 256)",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run on Ray Data (needs harerun[ray]): alone (after the inputs) or `local`, a Ray instance started "
        "here (or $RAY_ADDRESS); or a cluster: auto, HOST:PORT, ray://HOST:10001",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="skip photos already in --out (same path, sha256 and variant), append the rest",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar, no line per failed photo")
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser(
        "report",
        help="compare the variants of batch or API results: an HTML report and a Markdown summary",
        description="Per variant and detector: score distributions, status and error rates, time per photo; "
        "per detector the difference of each variant from the baseline with a seeded bootstrap 95 % interval, "
        "and with photos in several variants (paired by sha256, else path) Spearman's rho and ICC(3,1). "
        "The Markdown summary goes to stdout; the HTML report needs nothing from the network. See docs/report.md.",
        epilog="Exit codes: 0 report written; 2 bad input (missing or unreadable file, no records, unknown "
        "--baseline); 1 anything else (e.g. matplotlib missing: pip install 'harerun[report]').",
    )
    p.add_argument(
        "results",
        nargs="+",
        metavar="RESULTS",
        help="harerun batch output (.jsonl, .csv, .parquet) or JSON Lines of API analysis responses",
    )
    p.add_argument("--out", required=True, metavar="REPORT.html", help="where to write the HTML report")
    p.add_argument("--baseline", help="the variant the others are compared with (default: the first by name)")
    p.add_argument("--unpaired", action="store_true", help="compare variants as independent samples even when paired")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    p.add_argument("--resamples", type=int, default=9999, help="bootstrap resamples (default: 9999)")
    p.add_argument("--title", help="the report's title")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("faces", help="list the faces found in photos")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    with_pipeline(p)
    p.add_argument("--backend", help="face backend (default: the pipeline's)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_faces)

    plugins = sub.add_parser("plugins", help="installed detector plugins").add_subparsers(dest="action", required=True)
    p = plugins.add_parser("list", help="each detector, its version, package and params")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins_list)

    pipes = sub.add_parser("pipelines", help="pipeline files").add_subparsers(dest="action", required=True)
    p = pipes.add_parser("validate", help="check pipeline files; every problem is listed")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_pipelines_validate)
    p = pipes.add_parser("schema", help="print the JSON Schema of pipeline files")
    p.set_defaults(func=cmd_pipelines_schema)
    p = pipes.add_parser("list", help="pipelines and experiments in the pipelines folder")
    p.add_argument("--pipelines-dir", default=None)
    p.set_defaults(func=cmd_pipelines_list)

    p = sub.add_parser(
        "sample-photo", help="write scikit-image's astronaut photo (public domain) for trying things out"
    )
    p.add_argument("out", metavar="OUT.jpg")
    p.set_defaults(func=cmd_sample_photo)

    p = sub.add_parser(
        "doctor",
        help="check this installation: versions, models and where they are, face backend, S3, CPU threads",
        epilog="Exit codes: 0 nothing wrong, 1 problems found (listed at the end).",
    )
    p.add_argument("--pipelines-dir", default=None, help="folder of pipeline files (default: as for analyze)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_doctor)

    # Commands of optional parts (model store, HTTP server) add themselves when present.
    for module in ("harerun.store_cli", "harerun.api.cli"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            importlib.import_module(module).add_commands(sub)
    _add_plugin_commands(sub, host)
    return parser


def _add_plugin_commands(sub: argparse._SubParsersAction, host: PluginHost) -> None:
    """Each plugin's commands, at the top level or in a group of :data:`COMMAND_GROUPS`."""
    groups: dict[str, argparse._SubParsersAction] = {}
    commands = sorted(host.commands().values(), key=lambda c: c.name)
    for group, (help_, description) in COMMAND_GROUPS.items():
        tasks = [c.name.split()[1] for c in commands if c.name.split()[0] == group and " " in c.name]
        parser = sub.add_parser(group, help=help_, description=description)
        if tasks:
            groups[group] = parser.add_subparsers(dest=f"{group}_task", metavar="{" + ",".join(tasks) + "}")
            parser.set_defaults(func=lambda args, _parser=parser: (_parser.print_help(), EXIT_BAD_INPUT)[1])
        else:  # say so, rather than argparse's "invalid choice: ... (choose from )"
            parser.description += f" No installed plugin adds a `harerun {group}` command."
            parser.add_argument("words", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            parser.set_defaults(func=lambda args, _group=group, _parser=parser: _no_command(_group, args, _parser))
    for command in commands:
        words = command.name.split()
        fix = f"Uninstall '{command.package}' or block it with HARERUN_BLOCKED_PLUGINS={command.plugin}."
        if len(words) == 1 and words[0] in sub.choices:
            raise PluginError(
                f"package '{command.package}' registers the command 'harerun {command.name}', "
                f"which the core already has. {fix}"
            )
        if len(words) == 2 and words[0] not in COMMAND_GROUPS:
            raise PluginError(
                f"package '{command.package}' registers the command 'harerun {command.name}', but "
                f"'{words[0]}' is not a command group (groups: {', '.join(COMMAND_GROUPS)}; one word adds a top-level "
                f"command). {fix}"
            )
        target = groups[words[0]] if len(words) == 2 else sub
        kwargs = {"help": command.help} if command.help is not None else {}
        p = target.add_parser(words[-1], description=command.description, **kwargs)
        if command.add_arguments is not None:
            command.add_arguments(p)
        p.set_defaults(func=command.run)


def _no_command(group: str, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if not args.words:
        parser.print_help()
    else:
        print(
            f"harerun: no installed plugin adds `harerun {group} {args.words[0]}` "
            f"(plugin may not be installed; `harerun plugins list` shows what is)",
            file=sys.stderr,
        )
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
    except HareRunError as exc:  # a plugin that fails to import, or a command name taken twice
        print(f"harerun: {exc.message}", file=sys.stderr)
        return exc.exit_code
    args = parser.parse_args(argv)
    if args.verbose:
        _verbose()
    try:
        return args.func(args)
    except HareRunError as exc:
        print(f"harerun: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `harerun plugins list | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
