"""Rendering of portal pages: the Jinja2 templates, texts and test ids per UI version, pop-ups.

Markup lives in ``sandbox/templates`` (``base.html``, a folder per portal, shared partials and
pages); this module turns a request into the data those templates need. Autoescaping is on for
every ``.html`` template, so anything a dealer typed is escaped when it is echoed back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from sandbox.faults import POPUP_KINDS
from sandbox.heavy import page_assets
from sandbox.state import FieldSpec, PortalState, Session

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=jinja2.select_autoescape(["html"]),
    auto_reload=False,  # package data: read once, not stat-ed on every render
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
# Keep the pop-up script's settings in the order the portal wrote them.
_ENV.policies["json.dumps_kwargs"] = {"sort_keys": False}

TEMPLATES = Jinja2Templates(env=_ENV)

# Pages that are not the portal's at all: what a gateway or CDN in front of it would answer.
SERVICE_UNAVAILABLE_PAGE = _ENV.get_template("gateway/503.html").render()
GATEWAY_TIMEOUT_PAGE = _ENV.get_template("gateway/504.html").render()
GARBAGE_PAGE = _ENV.get_template("gateway/challenge.html").render()


@dataclass(frozen=True)
class FormLayout:
    """How a portal lays out its forms: the data the one form macro (partials/forms.html) reads.

    ``rows`` picks the shape of a field: ``table`` (label | control | error cells of a table row),
    ``fieldset`` (a grid row of label, control and error inside a fieldset) or ``stacked`` (label
    above its control, error below). The class names are the portal's own.
    """

    rows: Literal["table", "fieldset", "stacked"]
    error_tag: str  # the element holding a field's message
    error_class: str
    actions_class: str  # the row of the submit button and the "Back" link
    fields_class: str | None = None  # the element around all fields (table)
    field_class: str | None = None  # each field's element (fieldset, stacked)
    error_cell_class: str | None = None  # the cell around the message (table)
    back_class: str | None = None
    back_first: bool = False  # the "Back" link before the submit button


@dataclass
class FieldView:
    """A field as one render shows it: spec plus current value, error and version-specific names."""

    spec: FieldSpec
    value: str
    error: str | None
    input_id: str
    label: str
    testid: str
    error_testid: str
    hint: str | None = None


def testid_for(version: str, name: str) -> str:
    """v1 test ids are kebab-case (``mileage-input``); v2 renames them ``qa_mileage_input``."""
    if version == "v1":
        return name
    return "qa_" + name.replace("-", "_")


class PortalPages(PortalState):
    """Renders a portal's pages from its templates, texts, ids and pop-up dice."""

    brand: ClassVar[str]  # the portal's product name, e.g. "Northwind Dealer Connect"
    consent_cookie: ClassVar[str]
    texts: ClassVar[dict[str, dict[str, str]]]  # version -> text key -> text
    id_prefix: ClassVar[dict[str, str]]  # version -> prefix of input ids
    form_layout: ClassVar[FormLayout]
    #: The main navigation: which ``paths`` it links, in order (shown to a logged-in dealer).
    nav: ClassVar[tuple[str, ...]] = ("home", "search", "lookup", "logout")

    def version(self, request: Request) -> str:
        return self.config_for(request).ui_version

    def t(self, request: Request, key: str) -> str:
        cfg = self.config_for(request)
        return cfg.renamed_texts.get(key) or self.texts[cfg.ui_version][key]

    def testid(self, request: Request, name: str) -> str:
        return testid_for(self.version(request), name)

    def input_id(self, name: str, version: str) -> str:
        """The id of input ``name`` under ``version``: the portal's prefix + kebab-case name."""
        return self.id_prefix[version] + name.replace("_", "-").lower()

    def field_view(
        self, request: Request, spec: FieldSpec, value: Any, error: str | None
    ) -> FieldView:
        v = self.version(request)
        i = 0 if v == "v1" else 1
        return FieldView(
            spec=spec,
            value="" if value is None else str(value),
            error=error,
            input_id=self.input_id(spec.name, v),
            label=spec.label[i],
            testid=self.testid(request, f"{spec.key.replace('_', '-')}-input"),
            error_testid=self.testid(request, f"{spec.key.replace('_', '-')}-error"),
            hint=spec.hint[i] if spec.hint else None,
        )

    def render(
        self,
        request: Request,
        template: str,
        title: str,
        *,
        session: Session | None = None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """A full portal page, with whatever pop-ups the dice decide for this request."""
        cfg = self.config_for(request)
        texts = {**self.texts[cfg.ui_version], **cfg.renamed_texts}

        def t(key: str, **values: Any) -> str:
            return texts[key].format(**values) if values else texts[key]

        def testid(name: str) -> str:
            return testid_for(cfg.ui_version, name)

        page: dict[str, Any] = {
            "layout_template": f"{self.key}/layout.html",
            "oem": self.key,
            "brand": self.brand,
            "paths": self.paths,
            "nav": self.nav,
            "form_layout": self.form_layout,
            "version": cfg.ui_version,
            "config": cfg,
            "t": t,
            "testid": testid,
            "title": title,
            "session": session,
            "popups": self.popups(request, session),
            "heavy": page_assets(request, cfg.third_party_delay_ms) if cfg.heavy_pages else None,
        }
        return TEMPLATES.TemplateResponse(
            request, template, {**page, **context}, status_code=status_code
        )

    # ----------------------------------------------------------------- pop-ups

    def popups_for(self, request: Request, session: Session | None) -> list[str]:
        """Which pop-ups this render shows, in display order (decided by the seeded dice)."""
        cfg = self.config_for(request)
        key = request.scope.get("state", {}).get("sandbox_fault_key", "")
        shown = []
        for kind in POPUP_KINDS:
            if kind not in cfg.popup_kinds or cfg.popup_rate <= 0:
                continue
            if kind == "cookie" and request.cookies.get(self.consent_cookie):
                continue
            if kind in ("survey", "session") and session is None:
                continue
            if self.dice.happens(cfg.seed, f"popup:{kind}", key, cfg.popup_rate):
                shown.append(kind)
        return shown

    def popups(self, request: Request, session: Session | None) -> Mapping[str, Any] | None:
        """The overlays of this render and their script's settings (partials/popups.html)."""
        cfg = self.config_for(request)
        kinds = self.popups_for(request, session)
        remaining = self.session_remaining(session, cfg) if session else None
        warn_at = None
        if remaining is not None:
            warn_window = min(60.0, cfg.session_ttl_s / 3)
            warn_at = max(0.0, remaining - warn_window)
            if warn_at == 0.0 and "session" not in kinds:
                kinds.append("session")
        overlays = [
            {"kind": kind, "queued": True, "visible": index == 0 and cfg.popup_delay_ms == 0}
            for index, kind in enumerate(kinds)
        ]
        if warn_at is not None and "session" not in kinds:
            # The real expiry warning, shown by the page's timer when the idle time runs out.
            overlays.append({"kind": "session", "queued": False, "visible": False})
        if not overlays:
            return None
        script_config = {
            "delay": cfg.popup_delay_ms,
            "consent": self.consent_cookie,
            "keepalive": self.paths.get("keepalive"),
            "warnAt": warn_at,
            "warnWindow": min(60.0, cfg.session_ttl_s / 3),
            "ttl": cfg.session_ttl_s,
        }
        return {"overlays": overlays, "script_config": script_config}
