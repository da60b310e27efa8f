"""The README shows a screenshot of every page `make screenshots` captures (not run here)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("screenshots", ROOT / "scripts/screenshots.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_page_the_script_captures_is_committed_and_shown_in_the_readme():
    script = _script()
    readme = (ROOT / "README.md").read_text()
    names = [p.name for p in script.PAGES]
    assert len(set(names)) == len(names) >= 3
    for p in script.PAGES:
        assert p.path.startswith("/")
        png = script.OUTPUT / f"{p.name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f"(docs/console/{p.name}.png)" in readme
