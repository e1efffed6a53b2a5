"""The `harerun` command: output, overlays and exit codes (0 ok, 2 bad input, 3 no usable face)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from harerun.testing import FAST_PIPELINE, run_cli

REPO = Path(__file__).resolve().parents[1]
FAST = FAST_PIPELINE


def harerun(*args, cwd=REPO):
    return run_cli(*args, cwd=cwd)


@pytest.fixture(scope="module")
def files(tmp_path_factory, astronaut_bgr):
    d = tmp_path_factory.mktemp("cli")
    cv2.imwrite(str(d / "astronaut.jpg"), astronaut_bgr)
    cv2.imwrite(str(d / "grey.png"), np.full((300, 300, 3), 120, np.uint8))
    (d / "notes.jpg").write_text("not a photo")
    (d / "fast.yaml").write_text(FAST)
    (d / "bad.yaml").write_text(FAST.replace("plugin: redness", "plugin: rednes"))
    return d


def test_analyze_json_and_overlay(files):
    out = harerun(
        "analyze", files / "astronaut.jpg", "--pipeline", files / "fast.yaml", "--json", "--overlay", files / "ov.png"
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["pipeline"] == "clitest" and doc["results"]["acne"]["status"] == "ok"
    assert doc["face"]["backend_used"] == "haar"
    overlay = cv2.imread(str(files / "ov.png"))
    assert overlay.shape[1] > 512  # panels: the face and a legend beside it (tests/test_overlay.py)


def test_analyze_table_is_the_default(files):
    out = harerun("analyze", files / "astronaut.jpg", "--pipeline", files / "fast.yaml")
    assert out.returncode == 0, out.stderr
    assert "acne" in out.stdout and "redness" in out.stdout and "quality" in out.stdout


def test_exit_codes_for_bad_input_and_no_face(files):
    bad = harerun("analyze", files / "notes.jpg", "--pipeline", files / "fast.yaml")
    assert bad.returncode == 2 and "notes.jpg" in bad.stderr and "JPEG, PNG" in bad.stderr
    noface = harerun("analyze", files / "grey.png", "--pipeline", files / "fast.yaml")
    assert noface.returncode == 3 and "no face found" in noface.stderr
    missing = harerun("analyze", files / "nope.jpg", "--pipeline", files / "fast.yaml")
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_many_photos_give_a_json_list_and_the_worst_exit_code(files):
    out = harerun("analyze", files / "astronaut.jpg", files / "grey.png", "--pipeline", files / "fast.yaml", "--json")
    assert out.returncode == 3
    docs = json.loads(out.stdout)
    assert docs[0]["results"]["acne"]["status"] == "ok"
    assert docs[1]["error"]["code"] == "NO_FACE"


def test_invalid_pipeline_lists_problems(files):
    out = harerun("analyze", files / "astronaut.jpg", "--pipeline", files / "bad.yaml")
    assert out.returncode == 2
    assert "bad.yaml: detectors[1].plugin: detector 'rednes' is not registered; did you mean 'redness'?" in out.stderr
    out = harerun("pipelines", "validate", files / "bad.yaml", files / "fast.yaml")
    assert out.returncode == 2 and "fast.yaml: ok" in out.stdout and "rednes" in out.stderr


def test_shipped_pipelines_validate_and_schema_exports():
    out = harerun(
        "pipelines", "validate", *sorted(p for p in (REPO / "pipelines").glob("*.yaml") if p.name != "experiments.yaml")
    )
    assert out.returncode == 0, out.stderr
    schema = json.loads(harerun("pipelines", "schema").stdout)
    assert "acne" in schema["$defs"]["DetectorStep"]["properties"]["plugin"]["enum"]


def test_faces_lists_every_face(files):
    out = harerun("faces", files / "astronaut.jpg", files / "grey.png", "--backend", "haar", "--json")
    assert out.returncode == 3  # the grey image has none
    docs = json.loads(out.stdout)
    assert len(docs[0]["faces"]) == 1 and docs[1]["faces"] == []
    x, y, w, h = docs[0]["faces"][0]["box"]
    assert 150 < x < 230 and 40 < y < 120


def test_dogs_photo_has_no_face(shared, files):
    # With the embedded Haar detector. (YuNet scores the orange dog's face 0.857, above its
    # faintest real face in the dlib set: that is the one false alarm bench/face.py reports.)
    out = harerun("analyze", shared / "data/faces/dlib_examples/dogs.jpg", "--pipeline", files / "fast.yaml", "--json")
    assert out.returncode == 3
    assert json.loads(out.stdout)["error"]["issues"] == ["NO_FACE"]


# -- commands that plugins add (hookspecs.register_commands) ------------------------------


def test_training_commands_come_from_their_plugins():
    out = harerun("train", "--help")
    assert out.returncode == 0 and "acne-grade" in out.stdout and "acne-lesions" in out.stdout
    out = harerun("train", "acne-grade", "--help")
    assert out.returncode == 0 and "--framing" in out.stdout and "--no-tflite" in out.stdout
    out = harerun("train", "acne-lesions", "--help")
    assert out.returncode == 0 and "--steps-per-epoch" in out.stdout and "--max-minutes" in out.stdout


def _command_plugin(name: str, *commands: str):
    from harerun import hookimpl

    def add_arguments(parser):
        parser.add_argument("--times", type=int, default=1)

    def run(args):
        print(f"{args.command} x{args.times}")
        return 5

    class Plugin:
        @hookimpl
        def register_commands(self, register):
            for command in commands:
                register(command, run, add_arguments=add_arguments, help=f"say hello ({name})", description="Hi.")

    Plugin.__name__ = name
    return Plugin()


def _host(*plugins):
    from harerun.host import PluginHost

    return PluginHost(autoload=False, plugins=plugins)


def test_a_plugin_command_is_listed_in_help_and_runs(capsys):
    from harerun import cli

    parser = cli.build_parser(_host(_command_plugin("pkg_hello", "hello", "train toy")))
    top = parser.format_help()
    assert "hello" in top and "say hello (pkg_hello)" in top
    args = parser.parse_args(["hello", "--times", "3"])
    assert args.func(args) == 5 and capsys.readouterr().out == "hello x3\n"
    args = parser.parse_args(["train", "toy"])
    assert args.func(args) == 5 and args.train_task == "toy"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    assert "toy" in capsys.readouterr().out


def test_a_command_name_taken_twice_stops_the_cli_naming_both_packages(monkeypatch, capsys):
    from harerun import cli, host

    both = _host(_command_plugin("pkg_a", "train toy"), _command_plugin("pkg_b", "train toy"))
    monkeypatch.setattr(host, "PluginHost", lambda: both)
    assert cli.main(["--help"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("harerun: command 'harerun train toy' is registered twice")
    assert "pkg_a" in err and "pkg_b" in err and "HARERUN_BLOCKED_PLUGINS" in err


def test_a_plugin_cannot_take_a_core_command_or_invent_a_group():
    from harerun import cli
    from harerun.errors import PluginError

    with pytest.raises(PluginError, match="'harerun models', which the core already has"):
        cli.build_parser(_host(_command_plugin("pkg_x", "models")))
    with pytest.raises(PluginError, match="'harerun train', which the core already has"):
        cli.build_parser(_host(_command_plugin("pkg_x", "train")))
    with pytest.raises(PluginError, match="'frobnicate' is not a command group"):
        cli.build_parser(_host(_command_plugin("pkg_x", "frobnicate now")))


def test_train_without_a_plugin_that_trains_says_so(capsys):
    from harerun import cli

    args = cli.build_parser(_host()).parse_args(["train", "acne-grade", "--data", "x"])
    assert args.func(args) == 2
    assert "no installed plugin adds `harerun train acne-grade`" in capsys.readouterr().err
