"""Versioned selector files: how to find each thing on one OEM portal's UI version.

A locator spec is a small dict, user-facing first (Playwright's guidance):
``{"label": "Mileage"}``, ``{"role": "button", "name": "Next"}``,
``{"test_id": "reference-number"}``, ``{"text": "..."}`` or, as a last resort, ``{"css": "..."}``.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any

from playwright.async_api import Locator, Page
from pydantic import BaseModel, Field


class LocatorSpec(BaseModel):
    """One way to find an element."""

    label: str | None = None
    role: str | None = None
    name: str | None = None
    test_id: str | None = None
    text: str | None = None
    css: str | None = None

    def locate(self, page: Page | Locator) -> Locator:
        """The Playwright locator for this spec (exact matching: labels differ by one word),
        on a page or inside another element."""
        if self.label is not None:
            return page.get_by_label(self.label, exact=True)
        if self.role is not None:
            return page.get_by_role(self.role, name=self.name, exact=True)  # type: ignore[arg-type]
        if self.test_id is not None:
            return page.get_by_test_id(self.test_id)
        if self.text is not None:
            return page.get_by_text(self.text, exact=True)
        if self.css is not None:
            return page.locator(self.css)
        raise ValueError("empty locator spec")

    def __str__(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.model_dump(exclude_none=True).items())


class FormStep(BaseModel):
    """One page of the portal's form: fields by our payload key, and the button to go on."""

    fields: dict[str, LocatorSpec]
    next: LocatorSpec


class LoginSelectors(BaseModel):
    fields: dict[str, LocatorSpec]
    submit: LocatorSpec
    error: LocatorSpec


class TotpSelectors(BaseModel):
    path: str
    field: LocatorSpec
    submit: LocatorSpec
    error: LocatorSpec


class SearchSelectors(BaseModel):
    fields: dict[str, LocatorSpec]
    submit: LocatorSpec
    start: LocatorSpec
    not_found: LocatorSpec


class ReviewSelectors(BaseModel):
    attestation: LocatorSpec
    submit: LocatorSpec


class LookupSelectors(BaseModel):
    query: LocatorSpec
    submit: LocatorSpec
    results: LocatorSpec
    row: LocatorSpec = Field(description="One earlier submission inside `results`.")
    empty: LocatorSpec


class PopupSelectors(BaseModel):
    name: str
    dialog: LocatorSpec
    dismiss: LocatorSpec


class SelectorSet(BaseModel):
    """Everything an adapter needs to drive one UI version of one portal."""

    oem: str
    ui_version: str
    reference_regex: str = Field(description="The reference format, matched whole.")
    paths: dict[str, str]
    login: LoginSelectors
    totp: TotpSelectors | None = None
    logged_in: LocatorSpec
    search: SearchSelectors
    steps: list[FormStep]
    review: ReviewSelectors
    confirmation_reference: LocatorSpec
    lookup: LookupSelectors
    popups: list[PopupSelectors] = Field(default_factory=list)

    @cached_property
    def reference_pattern(self) -> re.Pattern[str]:
        return re.compile(self.reference_regex)

    def parse_reference(self, text: str) -> str | None:
        """The reference if `text` is exactly one in this version's format."""
        text = text.strip()
        return text if self.reference_pattern.fullmatch(text) else None

    def find_reference(self, text: str) -> str | None:
        """The first reference in this version's format inside a longer text."""
        m = self.reference_pattern.search(text)
        return m.group(0) if m else None


def load_selector_sets(folder: Path) -> dict[str, SelectorSet]:
    """Every `<version>.json` in an adapter's selectors folder, by UI version."""
    sets: dict[str, SelectorSet] = {}
    for path in sorted(folder.glob("*.json")):
        data: dict[str, Any] = json.loads(path.read_text())
        sel = SelectorSet.model_validate(data)
        if sel.ui_version != path.stem:
            raise ValueError(f"{path}: ui_version {sel.ui_version!r} does not match file name")
        sets[sel.ui_version] = sel
    if not sets:
        raise ValueError(f"no selector files in {folder}")
    return sets
