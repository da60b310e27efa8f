"""Selector drift: what a changed portal page lacks, what looks closest, and the JSON merge
patch (RFC 7386) that would point the selector file at it. Deterministic, no guessing model."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, Field

#: The keys of a locator spec that find an element (the others say what to do with it).
LOCATOR_KEYS = ("label", "role", "name", "test_id", "text", "placeholder", "css")


class SelectorDiagnosis(BaseModel):
    """Why an element was not found and how the selector file could follow the portal."""

    selector_file: str = Field(description="The selector file, relative to the adapters folder.")
    path: str = Field(description="JSON path of the missing locator inside that file.")
    missing: dict[str, str] = Field(description="The locator that found nothing.")
    candidates: list[dict[str, str]] = Field(
        default_factory=list, description="The page's closest elements, best first, as locators."
    )
    suggested_patch: dict[str, Any] | None = Field(
        None, description="JSON merge patch for the selector file (the best candidate)."
    )


def json_path(parts: tuple[str | int, ...]) -> str:
    """`("steps", 0, "fields", "mileage")` -> `steps[0].fields.mileage`."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """The document `target` with the JSON merge patch applied (a new object; RFC 7386)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out


def merge_patch_between(old: Any, new: Any) -> Any:
    """The smallest JSON merge patch turning `old` into `new` (arrays are replaced whole)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return copy.deepcopy(new)
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = copy.deepcopy(value)
        elif old[key] != value:
            patch[key] = merge_patch_between(old[key], value)
    return patch


def best_candidate(missing: dict[str, str], candidates: list[dict[str, str]]) -> dict | None:
    """The candidate to suggest: the closest of the same kind (a button for a button, a label
    for a label), else the closest of any kind."""
    kind = missing.get("role") or next((k for k in LOCATOR_KEYS if k in missing), None)
    for candidate in candidates:
        if (candidate.get("role") or next(iter(candidate), None)) == kind:
            return candidate
    return candidates[0] if candidates else None


def suggest_patch(
    document: dict[str, Any], path: tuple[str | int, ...], candidate: dict[str, str]
) -> dict[str, Any] | None:
    """The merge patch that swaps the locator at `path` in the selector file `document` for
    `candidate`, keeping what the spec says beyond finding the element (type, source, frame,
    dialog...); None when the path is not in the file as written."""
    new = copy.deepcopy(document)
    node: Any = new
    for part in path:
        if part == "locator" and isinstance(node, dict) and "locator" not in node:
            continue  # the shorthand `"confirmation_reference": {"test_id": ...}`
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    if not isinstance(node, dict):
        return None
    for key in LOCATOR_KEYS:
        node.pop(key, None)
    node.update(candidate)
    patch = merge_patch_between(document, new)
    return patch or None
