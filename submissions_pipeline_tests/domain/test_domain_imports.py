"""The domain stays pure: it imports the standard library, pydantic and itself, nothing else."""

import ast
import sys
from pathlib import Path

import submissions_pipeline.domain

DOMAIN = Path(submissions_pipeline.domain.__file__).parent
ALLOWED_THIRD_PARTY = {"pydantic"}


def _imported_modules(source: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_domain_imports_only_the_standard_library_pydantic_and_itself() -> None:
    offenders = {}
    for source in sorted(DOMAIN.glob("*.py")):
        bad = {
            name
            for name in _imported_modules(source)
            if name.split(".")[0] not in sys.stdlib_module_names
            and name.split(".")[0] not in ALLOWED_THIRD_PARTY
            and name != "submissions_pipeline.domain"
            and not name.startswith("submissions_pipeline.domain.")
        }
        if bad:
            offenders[source.name] = sorted(bad)
    assert not offenders, offenders
