"""The tree keeps its shape: imports point inward, one class reads the environment, tests stand
alone. Read from the source with `ast`, so a change that breaks a rule fails here by name."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "submissions_pipeline"

#: Commands that exist to drive the sandbox: they may import it, inside the function that needs it.
SANDBOX_DRIVERS = {PACKAGE / "cli" / "serve.py", PACKAGE / "demo.py"}


def modules(*folders: Path) -> Iterator[Path]:
    for folder in folders:
        yield from sorted(p for p in folder.rglob("*.py") if "migrations" not in p.parts)


def imported(tree: ast.AST) -> Iterator[tuple[ast.AST, str, bool]]:
    """(node, top-level module name, at module level) for every import in a tree."""
    top_level = {id(n) for n in getattr(tree, "body", [])}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name.split(".")[0], id(node) in top_level
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node, node.module.split(".")[0], id(node) in top_level


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def test_production_code_never_imports_the_sandbox_or_an_adapter_by_name():
    offenders = []
    for path in modules(PACKAGE):
        for node, name, at_module_level in imported(parse(path)):
            if name == "adapters" or (
                name == "sandbox" and (path not in SANDBOX_DRIVERS or at_module_level)
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert offenders == []


def test_the_domain_imports_only_the_standard_library_pydantic_and_itself():
    allowed = {"pydantic", "submissions_pipeline", *sys.stdlib_module_names, "__future__"}
    offenders = []
    for path in modules(PACKAGE / "domain"):
        for node, name, _ in imported(parse(path)):
            module = getattr(node, "module", None) or ""
            if name not in allowed or (
                name == "submissions_pipeline"
                and not module.startswith("submissions_pipeline.domain")
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {module or name}")
    assert offenders == []


def _environment_reads(tree: ast.AST) -> Iterator[ast.AST]:
    """Reads of the process environment: os.getenv, os.environ.get/[..]/in/copy and the like.
    Setting or removing a variable (for a child process) is not a read."""

    def is_environ(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Attribute)
            and node.attr == "environ"
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        )

    writes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.Delete):
            for target in getattr(node, "targets", []):
                if isinstance(target, ast.Subscript) and is_environ(target.value):
                    writes.add(id(target.value))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("pop", "update")
            and is_environ(node.func.value)
        ):
            writes.add(id(node.func.value))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr == "getenv") or (
            is_environ(node) and id(node) not in writes
        ):
            yield node


def test_only_the_settings_class_reads_the_environment():
    offenders = []
    for path in modules(PACKAGE, ROOT / "adapters", ROOT / "sandbox", ROOT / "bench"):
        if path == PACKAGE / "settings.py":
            continue
        for node in _environment_reads(parse(path)):
            offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_no_test_module_imports_another_test_module():
    offenders = []
    for path in modules(ROOT / "submissions_pipeline_tests"):
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.ImportFrom) and node.module:
                last = node.module.split(".")[-1]
                if node.module.startswith("submissions_pipeline_tests") and last.startswith(
                    "test_"
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module}")
    assert offenders == []


@pytest.mark.parametrize("folder", ["submissions_pipeline", "adapters", "sandbox", "bench"])
def test_no_source_file_is_a_god_file(folder: str):
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in modules(ROOT / folder)
    }
    assert {name: n for name, n in sizes.items() if n > 600} == {}
