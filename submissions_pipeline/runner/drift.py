"""Selector-drift diagnosis on a live page: the closest elements to a missing locator, the
page's ARIA snapshot, and a suggested patch for the selector file (`domain.drift`)."""

from __future__ import annotations

import contextlib
import difflib
import json

from playwright.async_api import Page

from submissions_pipeline.domain.drift import (
    SelectorDiagnosis,
    best_candidate,
    json_path,
    suggest_patch,
)
from submissions_pipeline.runner.errors import SelectorMissing

#: What a person would name an element by, per frame: labels, buttons and links, test ids.
_NAMES_JS = """() => {
  const out = [];
  const text = (e) => (e.innerText || e.value || e.getAttribute('aria-label') || '').trim();
  document.querySelectorAll('label').forEach(e => out.push(['label', text(e)]));
  document.querySelectorAll('button, input[type=submit], input[type=button], [role=button]')
    .forEach(e => out.push(['button', text(e)]));
  document.querySelectorAll('a[href], [role=link]').forEach(e => out.push(['link', text(e)]));
  document.querySelectorAll('[data-testid]')
    .forEach(e => out.push(['test_id', e.getAttribute('data-testid')]));
  document.querySelectorAll('[placeholder]')
    .forEach(e => out.push(['placeholder', e.getAttribute('placeholder')]));
  return out.filter(([, n]) => n && n.length < 120).slice(0, 400);
}"""
_KIND_OF = {"label": "label", "role": "button", "test_id": "test_id", "placeholder": "placeholder"}


async def closest_candidates(page: Page, locator: dict[str, str], n: int = 5) -> list[dict]:
    """The page's elements whose names are closest to the missing locator's, as locator specs."""
    wanted = next(
        (locator[k] for k in ("label", "name", "text", "test_id", "placeholder") if k in locator),
        "",
    )
    kind = next((v for k, v in _KIND_OF.items() if k in locator), None)
    if locator.get("role") == "link":
        kind = "link"
    seen: set[tuple[str, str]] = set()
    scored: list[tuple[float, str, str]] = []
    for frame in page.frames:
        with contextlib.suppress(Exception):
            for k, name in await frame.evaluate(_NAMES_JS):
                name = " ".join(name.split())
                if (k, name) in seen:
                    continue
                seen.add((k, name))
                score = difflib.SequenceMatcher(None, wanted.lower(), name.lower()).ratio()
                scored.append((score + (0.1 if k == kind else 0), k, name))
    scored.sort(reverse=True)
    out = []
    for _, k, name in scored[:n]:
        if k in ("button", "link"):
            out.append({"role": k, "name": name})
        else:
            out.append({k: name})
    return out


async def aria_snapshot(page: Page) -> str | None:
    """The page's accessibility tree as YAML (what roles and names the page offers)."""
    with contextlib.suppress(Exception):
        return await page.locator("body").aria_snapshot(timeout=2000)
    return None


async def diagnose(page: Page, failure: SelectorMissing) -> SelectorDiagnosis:
    """What the page offers instead of the missing element, and the patch that would use it."""
    candidates = await closest_candidates(page, failure.locator)
    patch = None
    source, path = failure.selector_file, failure.selector_path
    shown = str(source) if source else "(unknown selector file)"
    if source is not None and path is not None:
        shown = "/".join(source.parts[-3:])  # <oem>/selectors/<version>.json
        best = best_candidate(failure.locator, candidates)
        if best is not None:
            with contextlib.suppress(OSError, ValueError):
                patch = suggest_patch(json.loads(source.read_text()), path, best)
    return SelectorDiagnosis(
        selector_file=shown,
        path=json_path(path) if path else failure.what,
        missing=failure.locator,
        candidates=candidates,
        suggested_patch=patch,
    )
