"""Versioned selector files: how to find each thing on one OEM portal's UI version.

A locator spec is a small dict, user-facing first (Playwright's guidance):
``{"label": "Mileage"}``, ``{"role": "button", "name": "Next"}``,
``{"test_id": "reference-number"}``, ``{"text": "..."}``, ``{"placeholder": "..."}`` or, as a last
resort, ``{"css": "..."}``; ``"frame"`` (the CSS of an ``<iframe>``) looks inside that frame.
Every model forbids unknown keys, so a typo fails at load with the file, the JSON path and the
key (see `load_selector_sets`). The README's "Adding a real portal" is the reference.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from playwright.async_api import FrameLocator, Locator, Page
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from submissions_pipeline.domain.case import SubmissionPayload
from submissions_pipeline.oems import OemConfigError

#: The case fields a portal field may be bound to, besides `payload.extra.<name>`.
CASE_SOURCES = frozenset(
    {"case_id", "vin", "dealer_id", "document", *SubmissionPayload.model_fields} - {"extra"}
)
#: The credential keys the login form may ask for.
LOGIN_KEYS = frozenset({"username", "password", "dealer_id"})


class SelectorFileError(OemConfigError):
    """A selector file is wrong; the message names the file, the JSON path and the problem."""


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt key must never be silently ignored."""

    model_config = ConfigDict(extra="forbid")


_LOCATOR_KINDS = ("label", "role", "test_id", "text", "placeholder", "css")


class LocatorSpec(_Strict):
    """One way to find an element (exactly one kind, `name` only with `role`)."""

    label: str | None = None
    role: str | None = None
    name: str | None = None
    test_id: str | None = None
    text: str | None = None
    placeholder: str | None = None
    css: str | None = None
    frame: str | None = Field(None, description="CSS of the <iframe> the element lives in.")

    @model_validator(mode="after")
    def _one_kind(self) -> LocatorSpec:
        kinds = [k for k in _LOCATOR_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                f"a locator needs exactly one of {', '.join(_LOCATOR_KINDS)} "
                f"(got {kinds or 'none'})"
            )
        if self.name is not None and self.role is None:
            raise ValueError("'name' only goes with 'role'")
        return self

    def root(self, page: Page | Locator) -> Page | Locator | FrameLocator:
        """Where to look: the page, or the frame this spec is scoped to."""
        if self.frame is not None and isinstance(page, Page):
            return page.frame_locator(self.frame)
        return page

    def locate(self, page: Page | Locator) -> Locator:
        """The Playwright locator for this spec (exact matching: labels differ by one word),
        on a page (inside its frame, when scoped) or inside another element."""
        root = self.root(page)
        if self.label is not None:
            return root.get_by_label(self.label, exact=True)
        if self.role is not None:
            return root.get_by_role(self.role, name=self.name, exact=True)  # type: ignore[arg-type]
        if self.test_id is not None:
            return root.get_by_test_id(self.test_id)
        if self.text is not None:
            return root.get_by_text(self.text, exact=True)
        if self.placeholder is not None:
            return root.get_by_placeholder(self.placeholder, exact=True)
        return root.locator(self.css or "")

    def where(self) -> dict[str, str]:
        """Only the keys that find the element (not a field's type or a button's wait)."""
        keys = (*_LOCATOR_KINDS, "name", "frame")
        return {k: v for k in keys if (v := getattr(self, k)) is not None}

    def __str__(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.where().items())


class AfterClick(_Strict):
    """What a click is done waiting for. Default: the navigation it starts (of its frame, when
    the button is in one). A single-page app names a response or an element instead."""

    navigation: bool = Field(False, description="Wait for the page (or frame) to navigate.")
    response: str | None = Field(None, description="Regex of the URL of a response to wait for.")
    locator: LocatorSpec | None = Field(None, description="An element to wait for.")
    nothing: bool = Field(False, description="Wait for nothing (the next action auto-waits).")


class ActionSpec(LocatorSpec):
    """A button: where it is, what its click waits for, and what to do with a JS dialog."""

    after: AfterClick | None = None
    dialog: Literal["accept", "dismiss"] | None = Field(
        None, description="Answer a JavaScript alert/confirm the click opens (default: dismiss)."
    )
    prompt: str | None = Field(None, description="Text to answer a JavaScript prompt with.")


class FieldSpec(LocatorSpec):
    """One portal field and the case field it is filled from."""

    type: Literal["text", "date", "select", "radio", "checkbox", "file"] = "text"
    source: str | None = Field(
        None, description="Case field (default: the field's key), e.g. payload.extra.category."
    )
    values: dict[str, str] = Field(
        default_factory=dict, description="Case value -> portal option label (select, radio)."
    )
    select_by: Literal["label", "value"] = "label"
    date_format: str = Field("%Y-%m-%d", description="strftime format of a text date field.")


def _check_sources(fields: dict[str, FieldSpec]) -> None:
    for key, spec in fields.items():
        source = spec.source or key
        if source not in CASE_SOURCES and not re.fullmatch(r"payload\.extra\.\w+", source):
            raise ValueError(
                f"field {key!r} is bound to {source!r}, which is no case field; use one of "
                f"{sorted(CASE_SOURCES)} or payload.extra.<name>"
            )


class _Section(_Strict):
    """A section whose `frame` scopes every locator in it that names no frame of its own."""

    frame: str | None = Field(None, description="CSS of the <iframe> the whole section is in.")

    @model_validator(mode="after")
    def _scope(self) -> _Section:
        if self.frame is not None:
            _push_frame(self, self.frame)
        return self


def _push_frame(model: BaseModel, frame: str) -> None:
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = value.values() if isinstance(value, dict) else [value]
        for item in items:
            if isinstance(item, LocatorSpec) and item.frame is None:
                item.frame = frame
            if isinstance(item, BaseModel):
                _push_frame(item, frame)


class FormStep(_Section):
    """One page of the portal's form: fields by case key, and the button that goes on (none
    when the fields share the page with the review's submit button)."""

    fields: dict[str, FieldSpec]
    next: ActionSpec | None = None

    @model_validator(mode="after")
    def _sources(self) -> FormStep:
        _check_sources(self.fields)
        return self


class LoginSelectors(_Section):
    fields: dict[str, LocatorSpec]
    submit: ActionSpec
    error: LocatorSpec | None = Field(None, description="The rejected-login message.")

    @model_validator(mode="after")
    def _keys(self) -> LoginSelectors:
        unknown = set(self.fields) - LOGIN_KEYS
        if unknown:
            raise ValueError(f"login fields {sorted(unknown)} are not in {sorted(LOGIN_KEYS)}")
        return self


class TotpSelectors(_Section):
    path: str
    field: LocatorSpec
    submit: ActionSpec
    error: LocatorSpec


class SearchSelectors(_Section):
    """Finding the vehicle before the form; `start` opens the form from the result."""

    fields: dict[str, FieldSpec]
    submit: ActionSpec
    start: ActionSpec | None = None
    not_found: LocatorSpec | None = None

    @model_validator(mode="after")
    def _sources(self) -> SearchSelectors:
        _check_sources(self.fields)
        return self


class ReviewSelectors(_Section):
    attestation: LocatorSpec | None = None
    submit: ActionSpec


class ReferenceSelectors(_Section):
    """Where the confirmation reference is: an element's text (a page, a modal, a toast), one
    of its attributes (a link's href), or the URL the submit redirected to."""

    locator: LocatorSpec | None = None
    attribute: str | None = Field(None, description="Read this attribute, e.g. href.")
    url: bool = Field(False, description="Read it from the page's URL after the submit.")
    within: bool = Field(
        False, description="The element's text holds more than the reference: search it."
    )

    @model_validator(mode="before")
    @classmethod
    def _bare_locator(cls, data: Any) -> Any:
        # `"confirmation_reference": {"test_id": "ref"}` is shorthand for {"locator": {...}}.
        if isinstance(data, dict) and set(data) & set(_LOCATOR_KINDS):
            return {"locator": data}
        return data

    @model_validator(mode="after")
    def _one_place(self) -> ReferenceSelectors:
        if (self.locator is None) == (not self.url):
            raise ValueError('the reference needs either a locator or "url": true')
        return self


class LookupSelectors(_Section):
    """The portal's list of earlier submissions, searched by one case field."""

    by: Literal["case_id", "vin", "reference"] = Field(
        "case_id",
        description="What the query box takes: our case id, the VIN, or the portal's own "
        "reference (known only once one was read; an ambiguous submit then waits for a person).",
    )
    query: LocatorSpec
    submit: ActionSpec
    results: LocatorSpec
    row: LocatorSpec = Field(description="One earlier submission inside `results`.")
    empty: LocatorSpec
    match: list[str] = Field(
        default_factory=list,
        description="Case fields (or `reference`) a row must show to be this case's "
        "(default: `by`).",
    )


class PopupSelectors(_Strict):
    name: str
    dialog: LocatorSpec
    dismiss: LocatorSpec


class ErrorSelectors(_Strict):
    """How the portal says it rejected the data, beyond fields marked aria-invalid."""

    summary: LocatorSpec | None = Field(None, description="A page-level error summary.")


class Fingerprint(_Strict):
    """How a page shows this UI version; every kind given must match."""

    meta: str | None = Field(None, description='content of <meta name="portal-ui-version">.')
    locator: LocatorSpec | None = None
    url: str | None = Field(None, description="Regex searched in the page URL.")


class PortalPaths(_Strict):
    """Where things are, relative to the portal's base URL."""

    login: str
    search: str | None = Field(None, description="Where a job starts when there is a search.")
    form: str | None = Field(None, description="Where a job starts when there is no search.")
    lookup: str | None = None
    home: str | None = None


class SelectorSet(_Strict):
    """Everything an adapter needs to drive one UI version of one portal."""

    oem: str
    ui_version: str
    fingerprint: Fingerprint | None = Field(
        None, description="None: the version used when no other version's fingerprint matches."
    )
    reference_regex: str = Field(
        description="The reference format: matched whole, or its group named `ref` is taken."
    )
    paths: PortalPaths
    login: LoginSelectors
    totp: TotpSelectors | None = None
    logged_in: LocatorSpec
    search: SearchSelectors | None = None
    steps: list[FormStep] = Field(min_length=1)
    review: ReviewSelectors
    confirmation_reference: ReferenceSelectors
    lookup: LookupSelectors | None = None
    errors: ErrorSelectors = Field(default_factory=ErrorSelectors)
    popups: list[PopupSelectors] = Field(default_factory=list)
    human_required: list[LocatorSpec] = Field(
        default_factory=list,
        description="Elements of pages only a person can answer (this portal's own CAPTCHA or "
        "sign-on prompt), beside the common CAPTCHA widgets every adapter knows.",
    )
    #: The file this set was read from (None when built in code).
    _source: Path | None = PrivateAttr(None)

    @property
    def source(self) -> Path | None:
        return self._source

    @model_validator(mode="after")
    def _consistent(self) -> SelectorSet:
        start = self.paths.search if self.search is not None else self.paths.form
        if start is None:
            raise ValueError(f"paths.{'search' if self.search else 'form'} is required")
        if self.lookup is not None and self.paths.lookup is None:
            raise ValueError("paths.lookup is required with a lookup section")
        try:
            re.compile(self.reference_regex)
        except re.error as exc:
            raise ValueError(f"reference_regex: {exc}") from None
        return self

    @property
    def start_path(self) -> str:
        """The page every job begins on: the vehicle search, or the form itself."""
        return (self.paths.search if self.search is not None else self.paths.form) or "/"

    @cached_property
    def reference_pattern(self) -> re.Pattern[str]:
        return re.compile(self.reference_regex)

    def parse_reference(self, text: str) -> str | None:
        """The reference in `text`: the `ref` group's match, or the whole text in the format."""
        text = text.strip()
        if "ref" in self.reference_pattern.groupindex:
            m = self.reference_pattern.search(text)
            return m.group("ref") if m else None
        return text if self.reference_pattern.fullmatch(text) else None

    @cached_property
    def _spec_paths(self) -> dict[int, tuple[str | int, ...]]:
        paths: dict[int, tuple[str | int, ...]] = {}

        def walk(value: Any, at: tuple[str | int, ...]) -> None:
            if isinstance(value, LocatorSpec):
                paths.setdefault(id(value), at)
            if isinstance(value, BaseModel):
                for name in type(value).model_fields:
                    walk(getattr(value, name), (*at, name))
            elif isinstance(value, dict):
                for key, item in value.items():
                    walk(item, (*at, key))
            elif isinstance(value, list):
                for n, item in enumerate(value):
                    walk(item, (*at, n))

        walk(self, ())
        return paths

    def path_of(self, spec: LocatorSpec) -> tuple[str | int, ...] | None:
        """Where `spec` (this very object) sits in the selector file, as JSON path parts."""
        return self._spec_paths.get(id(spec))

    def find_reference(self, text: str) -> str | None:
        """The first reference in this version's format inside a longer text."""
        m = self.reference_pattern.search(text)
        if m is None:
            return None
        return m.group("ref") if "ref" in self.reference_pattern.groupindex else m.group(0)


def _json_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _explain(path: Path, exc: ValidationError) -> SelectorFileError:
    problems = []
    for err in exc.errors():
        # Drop the model-validator steps pydantic adds to the location of a wrapped value.
        loc = tuple(p for p in err["loc"] if not str(p).startswith("function-"))
        where = _json_path(loc[:-1] if err["type"] == "extra_forbidden" else loc)
        if err["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown key {loc[-1]!r}")
        elif err["type"] == "missing":
            problems.append(f"{where}: required, missing")
        else:
            problems.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return SelectorFileError(f"{path}: " + "; ".join(problems))


def load_selector_set(path: Path) -> SelectorSet:
    """One selector file, or a SelectorFileError naming the file and the JSON path."""
    try:
        data: Any = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SelectorFileError(f"{path}: not valid JSON ({exc})") from None
    try:
        sel = SelectorSet.model_validate(data)
    except ValidationError as exc:
        raise _explain(path, exc) from None
    if sel.ui_version != path.stem:
        raise SelectorFileError(f"{path}: ui_version {sel.ui_version!r} does not match file name")
    sel._source = path.resolve()
    return sel


def load_selector_sets(folder: Path) -> dict[str, SelectorSet]:
    """Every `<version>.json` in an adapter's selectors folder, by UI version."""
    sets = {p.stem: load_selector_set(p) for p in sorted(folder.glob("*.json"))}
    if not sets:
        raise SelectorFileError(f"no selector files in {folder}")
    fallbacks = [v for v, s in sets.items() if s.fingerprint is None]
    if len(sets) > 1 and len(fallbacks) > 1:
        raise SelectorFileError(
            f"{folder}: versions {fallbacks} have no fingerprint; with several versions at most "
            "one may go without (the one used when no other matches)"
        )
    return sets
