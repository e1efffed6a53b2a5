"""The core names no plugin: nothing in core/src imports a ``harerun_*`` package (plugins come
to the core through the entry-point group and the hooks in ``hookspecs.py``, never the other way)."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "core" / "src"
DYNAMIC = {"import_module", "__import__", "find_spec"}


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in DYNAMIC and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def test_the_core_imports_no_plugin():
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 20
    offenders = [
        f"{path.relative_to(CORE)}:{line}: {module}"
        for path in files
        for line, module in _imported_modules(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        if module.split(".")[0].startswith("harerun_")
    ]
    assert not offenders, "the core imports plugins:\n" + "\n".join(offenders)


def test_the_check_sees_every_kind_of_import():
    tree = ast.parse(
        "import harerun_a\nfrom harerun_b.training import train\nimportlib.import_module('harerun_c.x')\n"
        "from harerun import hookimpl\n"
    )
    assert sorted(m for _, m in _imported_modules(tree)) == [
        "harerun",
        "harerun_a",
        "harerun_b.training",
        "harerun_c.x",
    ]
