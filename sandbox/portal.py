"""Machinery every sandbox OEM portal shares: sessions, drafts, faults, pop-ups, admin API, flow.

A concrete portal (northwind, aurora, kestrel) subclasses :class:`Portal` and supplies its URLs,
its texts per UI version, its field layout and its own markup (the ``*_html`` hooks), so that
adapters really differ per OEM while the rules (validation, ledger, fault injection) are the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, ClassVar
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox import accounts
from sandbox.faults import POPUP_KINDS, FaultConfig, FaultDice
from sandbox.ledger import Ledger, LedgerEntry
from sandbox.references import FIRST_SEQUENCE, make_reference
from sandbox.validation import MESSAGES, PAYLOAD_KEYS, normalize_vin, validate_field, vin_error

esc = html.escape

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class FieldSpec:
    """One input of a portal form. ``name`` is stable across UI versions; labels and ids are not."""

    key: str  # the common key: case_id, vin, repair_date, mileage, ..., document, username...
    name: str  # the form field name the portal posts
    label: tuple[str, str]  # (v1, v2) visible label text
    kind: str = "text"  # text | password | date | textarea | file | number
    hint: tuple[str | None, str | None] | None = None


@dataclass(frozen=True)
class StepSpec:
    """One page of the claim form before the review page."""

    slug: str
    title: tuple[str, str]
    fields: tuple[FieldSpec, ...]


@dataclass
class Session:
    token: str
    dealer_id: str
    created_at: datetime
    last_seen: datetime
    #: False between aurora's password page and its TOTP page.
    verified: bool = True


@dataclass
class Draft:
    """A claim being filled in; belongs to a dealer (not a session) so a re-login can resume it."""

    draft_id: str
    dealer_id: str
    vin: str
    vehicle: str
    case_id: str = ""
    raw: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    steps_done: set[str] = field(default_factory=set)
    document: dict[str, Any] | None = None


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


class Markup(str):
    """Text that is already HTML, so table renderers don't escape it again."""


def cell(value: str) -> str:
    """Escape a table cell unless it is :class:`Markup`."""
    return value if isinstance(value, Markup) else esc(value)


_DRAFT_IN_PATH = re.compile(r"/(dr[0-9a-f]{12})(?=/|$)")


class Portal:
    """Base class of a sandbox portal: state + Starlette app. Subclasses fill in the class vars."""

    key: ClassVar[str]
    name: ClassVar[str]  # the OEM's name, e.g. "Northwind Motors"
    brand: ClassVar[str]  # the portal's product name, e.g. "Northwind Dealer Connect"
    session_cookie: ClassVar[str]
    consent_cookie: ClassVar[str]
    paths: ClassVar[dict[str, str]]  # login, logout, home, search, start, claim, lookup
    login_fields: ClassVar[tuple[FieldSpec, ...]]
    search_fields: ClassVar[tuple[FieldSpec, ...]]
    steps: ClassVar[tuple[StepSpec, ...]]
    review_slug: ClassVar[str] = "review"
    texts: ClassVar[dict[str, dict[str, str]]]  # version -> text key -> text
    id_prefix: ClassVar[dict[str, str]]  # version -> prefix of input ids
    models: ClassVar[tuple[str, ...]]
    css: ClassVar[str]
    #: Whether sessions expire after ``session_ttl_s`` of inactivity (kestrel only).
    sessions_expire: ClassVar[bool] = False
    #: Whether login needs a second TOTP page (aurora only).
    needs_totp: ClassVar[bool] = False

    def __init__(
        self,
        config: FaultConfig | Mapping[str, Any] | None = None,
        *,
        clock: Clock = utc_now,
        **knobs: Any,
    ) -> None:
        base = config if isinstance(config, FaultConfig) else FaultConfig(**dict(config or {}))
        self.defaults = FaultConfig(**{**base.model_dump(), **knobs})
        self._config = self.defaults.model_copy(deep=True)
        self.clock = clock
        self.ledger = Ledger()
        self.dice = FaultDice(self.key)
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._drafts: dict[str, Draft] = {}
        self._sequence = FIRST_SEQUENCE
        self.app = self._build_app()

    # ----------------------------------------------------------------- configuration

    @property
    def config(self) -> FaultConfig:
        """The knobs in force (a snapshot; replaced whole on every change)."""
        return self._config

    def configure(self, **knobs: Any) -> FaultConfig:
        """Change some knobs; raises pydantic.ValidationError on an unknown knob or bad value."""
        with self._lock:
            self._config = FaultConfig(**{**self._config.model_dump(), **knobs})
            return self._config

    def reset(self) -> None:
        """Back to the constructor's knobs with an empty ledger, no sessions and fresh dice."""
        with self._lock:
            self._config = self.defaults.model_copy(deep=True)
            self._sessions.clear()
            self._drafts.clear()
            self._sequence = FIRST_SEQUENCE
        self.ledger.clear()
        self.dice.reset()

    # ----------------------------------------------------------------- state helpers

    def _cfg(self, request: Request) -> FaultConfig:
        # One snapshot per request, so a page never mixes v1 and v2.
        cfg = request.scope.get("state", {}).get("sandbox_config")
        return cfg if isinstance(cfg, FaultConfig) else self._config

    def t(self, request: Request, key: str) -> str:
        return self.texts[self._cfg(request).ui_version][key]

    def version(self, request: Request) -> str:
        return self._cfg(request).ui_version

    def testid(self, request: Request, name: str) -> str:
        """v1 test ids are kebab-case (``mileage-input``); v2 renames them ``qa_mileage_input``."""
        if self.version(request) == "v1":
            return name
        return "qa_" + name.replace("-", "_")

    def _session_remaining(self, session: Session, cfg: FaultConfig) -> float | None:
        if not self.sessions_expire:
            return None
        return cfg.session_ttl_s - (self.clock() - session.last_seen).total_seconds()

    def session_for(self, request: Request) -> tuple[Session | None, bool]:
        """The request's live session (touched), and whether an expired one was just dropped."""
        token = request.cookies.get(self.session_cookie)
        if not token:
            return None, False
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None, False
            remaining = self._session_remaining(session, self._cfg(request))
            if remaining is not None and remaining <= 0:
                del self._sessions[token]
                return None, True
            session.last_seen = self.clock()
            return session, False

    def start_session(self, dealer_id: str, *, verified: bool = True) -> Session:
        now = self.clock()
        session = Session(secrets.token_urlsafe(24), dealer_id, now, now, verified)
        with self._lock:
            self._sessions[session.token] = session
        return session

    def end_session(self, request: Request) -> None:
        token = request.cookies.get(self.session_cookie)
        with self._lock:
            self._sessions.pop(token or "", None)

    def _login_redirect(self, request: Request, *, expired: bool) -> RedirectResponse:
        target = request.url.path if request.method == "GET" else self._safe_back(request)
        query = f"?next={quote(target)}"
        if expired:
            query += "&expired=1"
        return RedirectResponse(self.paths["login"] + query, status_code=303)

    def _safe_back(self, request: Request) -> str:
        # After a POST to an expired session, send the dealer back to the page that posted.
        referer = request.headers.get("referer", "")
        match = re.match(r"^https?://[^/]+(/[^?#]*)", referer)
        return match.group(1) if match else self.paths["home"]

    def authenticated(self, request: Request) -> tuple[Session | None, Response | None]:
        """The logged-in (and TOTP-verified) session, or the redirect to show instead."""
        session, expired = self.session_for(request)
        if session is None:
            return None, self._login_redirect(request, expired=expired)
        if not session.verified:
            return None, RedirectResponse(self.paths["verify"], status_code=303)
        return session, None

    def new_draft(self, dealer_id: str, vin: str, case_id: str = "") -> Draft:
        draft = Draft(
            draft_id="dr" + secrets.token_hex(6),
            dealer_id=dealer_id,
            vin=vin,
            vehicle=self.vehicle_for(vin),
            case_id=case_id,
        )
        with self._lock:
            self._drafts[draft.draft_id] = draft
        return draft

    def draft(self, draft_id: str, dealer_id: str) -> Draft | None:
        with self._lock:
            draft = self._drafts.get(draft_id)
        return draft if draft is not None and draft.dealer_id == dealer_id else None

    def vehicle_for(self, vin: str) -> str:
        digest = hashlib.sha256(f"{self.key}|{vin}".encode()).digest()
        model = self.models[digest[1] % len(self.models)]
        return f"{2018 + digest[0] % 8} {self.name.split()[0]} {model}"

    def fault_key(self, method: str, path: str, cookies: Mapping[str, str]) -> str:
        """The stable key random events of one request are decided under.

        Dealer + method + path, with a draft id in the path replaced by its case id: the n-th
        GET of case C's review page by dealer D is decided the same way whatever runs beside it.
        """
        dealer = "anon"
        token = cookies.get(self.session_cookie)
        with self._lock:
            if token and token in self._sessions:
                dealer = self._sessions[token].dealer_id
            match = _DRAFT_IN_PATH.search(path)
            if match:
                draft = self._drafts.get(match.group(1))
                case = draft.case_id if draft else "?"
                path = path.replace(match.group(1), f"case={case}")
        return f"{dealer}|{method}|{path}"

    def _next_reference(self, cfg: FaultConfig, case_id: str) -> str:
        with self._lock:
            sequence = self._sequence
            self._sequence += 1
        return make_reference(
            self.key,
            cfg.ui_version,
            sequence=sequence,
            year=self.clock().year,
            seed=cfg.seed,
            case_id=case_id,
        )

    def today(self) -> date:
        # Accept "today" in the dealer's timezone too: a repair dated today must never be "future".
        return max(self.clock().date(), datetime.now().date())

    # ----------------------------------------------------------------- app

    def _build_app(self) -> Starlette:
        p = self.paths
        routes = [
            Route("/__admin/config", self.admin_config, methods=["GET", "POST"]),
            Route("/__admin/reset", self.admin_reset, methods=["POST"]),
            Route("/__admin/ledger", self.admin_ledger, methods=["GET"]),
            Route("/__admin/ledger/duplicates", self.admin_duplicates, methods=["GET"]),
            Route("/favicon.ico", lambda request: Response(status_code=204)),
            Route("/", self.root),
            Route(p["login"], self.login, methods=["GET", "POST"]),
            Route(p["logout"], self.logout, methods=["GET", "POST"]),
            Route(p["home"], self.home),
            Route(p["search"], self.search, methods=["GET", "POST"]),
            Route(p["start"], self.start_claim, methods=["POST"]),
            Route(p["claim"] + "/{draft_id}/{step}", self.claim_step, methods=["GET", "POST"]),
            Route(p["lookup"], self.lookup),
            *self.extra_routes(),
        ]
        return Starlette(routes=routes, middleware=[Middleware(FaultMiddleware, portal=self)])

    def extra_routes(self) -> list[Route]:
        """Portal-specific routes (aurora's TOTP page, kestrel's keep-alive)."""
        return []

    # ----------------------------------------------------------------- admin API

    async def admin_config(self, request: Request) -> JSONResponse:
        if request.method == "POST":
            try:
                body = await request.json()
                if not isinstance(body, dict):
                    raise ValueError("expected a JSON object of knobs")
                self.configure(**body)
            except (ValueError, TypeError) as exc:  # pydantic.ValidationError is a ValueError
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"oem": self.key, **self.config.model_dump()})

    async def admin_reset(self, request: Request) -> JSONResponse:
        self.reset()
        return JSONResponse({"oem": self.key, **self.config.model_dump()})

    async def admin_ledger(self, request: Request) -> JSONResponse:
        """Every submission, oldest first; ``?case_id=`` / ``?vin=`` narrow it down."""
        entries = self.ledger.entries()
        if case_id := request.query_params.get("case_id"):
            entries = [e for e in entries if e.case_id == case_id]
        if vin := request.query_params.get("vin"):
            entries = [e for e in entries if e.vin == vin.upper()]
        return JSONResponse([e.model_dump(mode="json") for e in entries])

    async def admin_duplicates(self, request: Request) -> JSONResponse:
        return JSONResponse([d.model_dump(mode="json") for d in self.ledger.duplicates()])

    # ----------------------------------------------------------------- rendering

    def page(
        self,
        request: Request,
        title: str,
        content: str,
        *,
        session: Session | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        """A full portal page, with whatever pop-ups the dice decide for this request."""
        popups = self.popups_html(request, session)
        body = self.layout_html(request, title, content, session, popups)
        return HTMLResponse(body, status_code=status_code)

    def document_html(self, request: Request, title: str, body: str, body_class: str = "") -> str:
        cfg = self._cfg(request)
        return (
            "<!doctype html>\n"
            f'<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="portal-ui-version" content="{cfg.ui_version}">'
            f'<meta name="portal-oem" content="{self.key}">'
            f"<title>{esc(title)} | {esc(self.brand)}</title>"
            f"<style>{self.css}{POPUP_CSS}</style></head>"
            f'<body class="{body_class}">{body}</body></html>'
        )

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

    def input_id(self, name: str, version: str) -> str:
        """The id of input ``name`` under ``version``: the portal's prefix + kebab-case name."""
        return self.id_prefix[version] + name.replace("_", "-").lower()

    def input_html(self, f: FieldView, extra: str = "") -> str:
        """The bare control (input/textarea), wired to its error for assistive tech."""
        described = f' aria-invalid="true" aria-describedby="{f.input_id}-error"' if f.error else ""
        common = (
            f'id="{f.input_id}" name="{f.spec.name}" data-testid="{f.testid}"{described}{extra}'
        )
        if f.spec.kind == "textarea":
            return f'<textarea {common} rows="3">{esc(f.value)}</textarea>'
        if f.spec.kind == "file":
            return f'<input type="file" {common} accept=".pdf,.txt,application/pdf,text/plain">'
        kind = {"password": "password", "date": "date", "number": "text"}.get(f.spec.kind, "text")
        mode = ' inputmode="decimal"' if f.spec.kind == "number" else ""
        value = "" if kind == "password" else esc(f.value)
        return f'<input type="{kind}" {common} value="{value}"{mode}>'

    def error_html(self, f: FieldView, tag: str = "span", cls: str = "error") -> str:
        if not f.error:
            return ""
        return (
            f'<{tag} class="{cls}" id="{f.input_id}-error" data-testid="{f.error_testid}">'
            f"{esc(f.error)}</{tag}>"
        )

    def button_html(self, request: Request, text_key: str, testid: str, cls: str = "") -> str:
        return (
            f'<button type="submit" class="{cls}" data-testid="{self.testid(request, testid)}">'
            f"{esc(self.t(request, text_key))}</button>"
        )

    def errors_summary_html(self, request: Request, count: int) -> str:
        if not count:
            return ""
        return (
            f'<div role="alert" class="error-summary" data-testid="'
            f'{self.testid(request, "error-summary")}">'
            f"{esc(self.t(request, 'errors.summary').format(count=count))}</div>"
        )

    # Hooks each portal implements with its own markup --------------------------------

    def layout_html(
        self, request: Request, title: str, content: str, session: Session | None, popups: str
    ) -> str:
        raise NotImplementedError

    def form_html(
        self,
        request: Request,
        *,
        action: str,
        fields: list[FieldView],
        submit: str,
        hidden: Mapping[str, str] | None = None,
        multipart: bool = False,
        back: str | None = None,
        before: str = "",
        after: str = "",
        method: str = "post",
    ) -> str:
        raise NotImplementedError

    def results_html(self, request: Request, vin: str, vehicle: str, start_form: str) -> str:
        raise NotImplementedError

    def table_html(self, request: Request, headers: list[str], rows: list[list[str]]) -> str:
        raise NotImplementedError

    # ----------------------------------------------------------------- pop-ups

    def popups_for(self, request: Request, session: Session | None) -> list[str]:
        """Which pop-ups this render shows, in display order (decided by the seeded dice)."""
        cfg = self._cfg(request)
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

    def popups_html(self, request: Request, session: Session | None) -> str:
        cfg = self._cfg(request)
        kinds = self.popups_for(request, session)
        remaining = self._session_remaining(session, cfg) if session else None
        warn_at = None
        if remaining is not None:
            warn_window = min(60.0, cfg.session_ttl_s / 3)
            warn_at = max(0.0, remaining - warn_window)
            if warn_at == 0.0 and "session" not in kinds:
                kinds.append("session")
        overlays = []
        for index, kind in enumerate(kinds):
            visible = index == 0 and cfg.popup_delay_ms == 0
            overlays.append(self.popup_html(request, kind, queued=True, visible=visible))
        if warn_at is not None and "session" not in kinds:
            # The real expiry warning, shown by the timer below when the idle time runs out.
            overlays.append(self.popup_html(request, "session", queued=False, visible=False))
        if not overlays:
            return ""
        script_cfg = {
            "delay": cfg.popup_delay_ms,
            "consent": self.consent_cookie,
            "keepalive": self.paths.get("keepalive"),
            "warnAt": warn_at,
            "warnWindow": min(60.0, cfg.session_ttl_s / 3),
            "ttl": cfg.session_ttl_s,
        }
        return "".join(overlays) + POPUP_SCRIPT.replace("__CFG__", json.dumps(script_cfg))

    def popup_html(self, request: Request, kind: str, *, queued: bool, visible: bool) -> str:
        title = self.t(request, f"popup.{kind}.title")
        text = self.t(request, f"popup.{kind}.body")
        button = self.t(request, f"popup.{kind}.button")
        hidden = "" if visible else " hidden"
        queue = ' data-queued="1"' if queued else ""
        return (
            f'<div class="sbx-overlay sbx-{self.key}-overlay" data-popup="{kind}"{queue}{hidden}>'
            f'<div class="sbx-dialog sbx-{self.key}-dialog" role="dialog" aria-modal="true" '
            f'aria-labelledby="popup-{kind}-title" '
            f'data-testid="{self.testid(request, kind + "-popup")}">'
            f'<h2 id="popup-{kind}-title">{esc(title)}</h2><p>{esc(text)}</p>'
            f'<button type="button" data-dismiss="1" '
            f'data-testid="{self.testid(request, kind + "-dismiss")}">{esc(button)}</button>'
            f"</div></div>"
        )

    # ----------------------------------------------------------------- flow: login

    async def root(self, request: Request) -> Response:
        session, _ = self.session_for(request)
        target = self.paths["home"] if session and session.verified else self.paths["login"]
        return RedirectResponse(target, status_code=303)

    def authenticate(self, form: Mapping[str, str]) -> str | None:
        """The dealer id whose credentials ``form`` carries, or None. Portals may add checks."""
        values = {spec.key: form.get(spec.name, "") for spec in self.login_fields}
        dealer_id = accounts.dealer_for_username(self.key, values.get("username", ""))
        if dealer_id is None:
            return None
        if "dealer_id" in values and values["dealer_id"].strip().upper() != dealer_id:
            return None
        expected = accounts.credentials(self.key, dealer_id).password
        if not hmac.compare_digest(values.get("password", "").encode(), expected.encode()):
            return None
        return dealer_id

    def login_page(
        self,
        request: Request,
        *,
        form: Mapping[str, str] | None = None,
        error: str | None = None,
        notice: str | None = None,
    ) -> HTMLResponse:
        form = form or {}
        views = [
            self.field_view(request, spec, form.get(spec.name, ""), None)
            for spec in self.login_fields
        ]
        next_path = form.get("next") or request.query_params.get("next", "")
        before = ""
        if notice:
            before += f'<p role="status" class="notice">{esc(notice)}</p>'
        if error:
            before += (
                f'<div role="alert" class="error-summary" data-testid="'
                f'{self.testid(request, "login-error")}">{esc(error)}</div>'
            )
        content = f"<h1>{esc(self.t(request, 'login.title'))}</h1>" + self.form_html(
            request,
            action=self.paths["login"],
            fields=views,
            submit=self.button_html(request, "login.button", "login-button", "primary"),
            hidden={"next": next_path},
            before=before,
        )
        return self.page(request, self.t(request, "login.title"), content)

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            session, _ = self.session_for(request)
            if session is not None and session.verified:
                return RedirectResponse(self.paths["home"], status_code=303)
            expired = request.query_params.get("expired") == "1"
            notice = self.t(request, "login.expired") if expired else None
            return self.login_page(request, notice=notice)
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        dealer_id = self.authenticate(form)
        if dealer_id is None or self._cfg(request).reject_login:
            return self.login_page(request, form=form, error=self.t(request, "login.error"))
        session = self.start_session(dealer_id, verified=not self.needs_totp)
        next_path = form.get("next", "")
        if self.needs_totp:
            target = self.paths["verify"] + (f"?next={quote(next_path)}" if next_path else "")
        else:
            target = next_path if is_local_path(next_path) else self.paths["home"]
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(self.session_cookie, session.token, httponly=True, samesite="lax")
        return response

    async def logout(self, request: Request) -> Response:
        self.end_session(request)
        response = RedirectResponse(self.paths["login"], status_code=303)
        response.delete_cookie(self.session_cookie)
        return response

    # ----------------------------------------------------------------- flow: home, search

    async def home(self, request: Request) -> Response:
        session, redirect = self.authenticated(request)
        if redirect:
            return redirect
        content = self.home_html(request, session)
        return self.page(request, self.t(request, "home.title"), content, session=session)

    def home_html(self, request: Request, session: Session) -> str:
        return (
            f"<h1>{esc(self.t(request, 'home.title'))}</h1>"
            f"<p>{esc(self.t(request, 'home.welcome').format(dealer=session.dealer_id))}</p>"
            f'<ul class="tiles"><li><a href="{self.paths["search"]}">'
            f"{esc(self.t(request, 'nav.new'))}</a></li>"
            f'<li><a href="{self.paths["lookup"]}">'
            f"{esc(self.t(request, 'nav.lookup'))}</a></li></ul>"
        )

    def search_form(
        self, request: Request, form: Mapping[str, str], errors: Mapping[str, str]
    ) -> str:
        views = [
            self.field_view(request, spec, form.get(spec.name, ""), errors.get(spec.key))
            for spec in self.search_fields
        ]
        return self.form_html(
            request,
            action=self.paths["search"],
            fields=views,
            submit=self.button_html(request, "search.button", "search-button", "primary"),
            before=self.errors_summary_html(request, len(errors)),
        )

    async def search(self, request: Request) -> Response:
        session, redirect = self.authenticated(request)
        if redirect:
            return redirect
        title = self.t(request, "search.title")
        if request.method == "GET":
            content = f"<h1>{esc(title)}</h1>" + self.search_form(request, {}, {})
            return self.page(request, title, content, session=session)
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        errors: dict[str, str] = {}
        values: dict[str, str] = {}
        for spec in self.search_fields:
            raw = form.get(spec.name, "")
            if spec.key == "vin":
                values["vin"] = normalize_vin(raw)
                if error := vin_error(values["vin"]):
                    errors["vin"] = error
            else:
                value, error = validate_field(spec.key, raw, self.today())
                values[spec.key] = str(value)
                if error:
                    errors[spec.key] = error
        if errors:
            content = f"<h1>{esc(title)}</h1>" + self.search_form(request, form, errors)
            return self.page(request, title, content, session=session)
        # The slow back-end lookup: async, so other requests are served meanwhile.
        await asyncio.sleep(self._cfg(request).search_latency_s)
        vin = values["vin"]
        if vin.endswith("000000"):
            notice = (
                f'<div role="alert" class="error-summary" data-testid="'
                f'{self.testid(request, "vehicle-not-found")}">'
                f"{esc(self.t(request, 'search.not_found').format(vin=vin))}</div>"
            )
            content = f"<h1>{esc(title)}</h1>{notice}" + self.search_form(request, form, {})
            return self.page(request, title, content, session=session)
        hidden = {"vin": vin}
        if "case_id" in values:
            hidden["case_id"] = values["case_id"]
        start = self.form_html(
            request,
            action=self.paths["start"],
            fields=[],
            submit=self.button_html(request, "search.start", "start-claim-button", "primary"),
            hidden=hidden,
        )
        content = f"<h1>{esc(self.t(request, 'search.results_title'))}</h1>" + self.results_html(
            request, vin, self.vehicle_for(vin), start
        )
        return self.page(request, title, content, session=session)

    async def start_claim(self, request: Request) -> Response:
        session, redirect = self.authenticated(request)
        if redirect:
            return redirect
        form = await request.form()
        vin = normalize_vin(str(form.get("vin", "")))
        if vin_error(vin):
            return RedirectResponse(self.paths["search"], status_code=303)
        case_id = str(form.get("case_id", "")).strip()
        draft = self.new_draft(session.dealer_id, vin, case_id)
        return RedirectResponse(self.step_url(draft, self.steps[0].slug), status_code=303)

    def step_url(self, draft: Draft, slug: str) -> str:
        return f"{self.paths['claim']}/{draft.draft_id}/{slug}"

    # ----------------------------------------------------------------- flow: claim steps

    async def claim_step(self, request: Request) -> Response:
        session, redirect = self.authenticated(request)
        if redirect:
            return redirect
        draft = self.draft(request.path_params["draft_id"], session.dealer_id)
        slug = request.path_params["step"]
        slugs = [s.slug for s in self.steps]
        if draft is None or slug not in [*slugs, self.review_slug]:
            return self.page(
                request,
                self.t(request, "notfound.title"),
                f"<h1>{esc(self.t(request, 'notfound.title'))}</h1>",
                session=session,
                status_code=404,
            )
        # A step is reachable only when every earlier step was completed.
        for earlier in self.steps:
            if earlier.slug == slug:
                break
            if earlier.slug not in draft.steps_done:
                return RedirectResponse(self.step_url(draft, earlier.slug), status_code=303)
        if slug == self.review_slug:
            return await self.review(request, session, draft)
        step = self.steps[slugs.index(slug)]
        if request.method == "GET":
            return self.step_page(request, session, draft, step, {})
        form = await request.form()
        errors: dict[str, str] = {}
        for spec in step.fields:
            if spec.kind == "file":
                error = await self._take_document(draft, form.get(spec.name))
                if error:
                    errors[spec.key] = error
                continue
            raw = form.get(spec.name, "")
            raw = raw if isinstance(raw, str) else ""
            draft.raw[spec.key] = raw
            value, error = validate_field(spec.key, raw, self.today())
            if error:
                errors[spec.key] = error
            elif spec.key == "case_id":
                draft.case_id = value
            else:
                draft.values[spec.key] = value
        if errors:
            draft.steps_done.discard(step.slug)
            return self.step_page(request, session, draft, step, errors)
        draft.steps_done.add(step.slug)
        index = slugs.index(slug)
        following = slugs[index + 1] if index + 1 < len(slugs) else self.review_slug
        return RedirectResponse(self.step_url(draft, following), status_code=303)

    async def _take_document(self, draft: Draft, upload: Any) -> str | None:
        if isinstance(upload, UploadFile) and upload.filename:
            data = await upload.read()
            if data:
                draft.document = {
                    "filename": upload.filename,
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "content_type": upload.content_type or "application/octet-stream",
                }
                return None
            return MESSAGES["document"]
        # No new file: fine if one was attached earlier (the dealer came back to this step).
        return None if draft.document else MESSAGES["document"]

    def step_page(
        self,
        request: Request,
        session: Session,
        draft: Draft,
        step: StepSpec,
        errors: Mapping[str, str],
    ) -> HTMLResponse:
        version_index = 0 if self.version(request) == "v1" else 1
        views = []
        for spec in step.fields:
            value = draft.case_id if spec.key == "case_id" else draft.raw.get(spec.key, "")
            views.append(self.field_view(request, spec, value, errors.get(spec.key)))
        after = ""
        if any(spec.kind == "file" for spec in step.fields) and draft.document:
            after = (
                f'<p class="attached">{esc(self.t(request, "document.attached"))}: '
                f"{esc(draft.document['filename'])} ({draft.document['size']} bytes)</p>"
            )
        slugs = [s.slug for s in self.steps]
        index = slugs.index(step.slug)
        back = self.step_url(draft, slugs[index - 1]) if index else None
        hidden = {"case_id": draft.case_id} if self.case_id_hidden() else None
        title = step.title[version_index]
        content = (
            self.progress_html(request, index)
            + f"<h1>{esc(title)}</h1>"
            + self.vehicle_banner_html(request, draft)
            + self.form_html(
                request,
                action=self.step_url(draft, step.slug),
                fields=views,
                submit=self.button_html(request, "step.next", "next-button", "primary"),
                hidden=hidden,
                multipart=any(spec.kind == "file" for spec in step.fields),
                back=back,
                before=self.errors_summary_html(request, len(errors)),
                after=after,
            )
        )
        return self.page(request, title, content, session=session)

    def case_id_hidden(self) -> bool:
        """Whether the case id is entered at search and then travels as a hidden field."""
        return all(spec.key != "case_id" for step in self.steps for spec in step.fields)

    def progress_html(self, request: Request, index: int) -> str:
        return ""

    def vehicle_banner_html(self, request: Request, draft: Draft) -> str:
        return (
            f'<p class="vehicle" data-testid="{self.testid(request, "vehicle-summary")}">'
            f"{esc(draft.vehicle)} · VIN {esc(draft.vin)}</p>"
        )

    def review_rows(self, request: Request, draft: Draft) -> list[tuple[str, str]]:
        version_index = 0 if self.version(request) == "v1" else 1
        rows = [("VIN", draft.vin)]
        case_label = self.t(request, "review.case_label")
        rows.append((case_label, draft.case_id))
        for step in self.steps:
            for spec in step.fields:
                if spec.key == "case_id":
                    continue
                if spec.kind == "file":
                    doc = draft.document or {}
                    rows.append((spec.label[version_index], doc.get("filename", "")))
                else:
                    rows.append((spec.label[version_index], draft.raw.get(spec.key, "")))
        return rows

    async def review(self, request: Request, session: Session, draft: Draft) -> Response:
        error = None
        if request.method == "POST":
            form = await request.form()
            if form.get("attest") in ("on", "yes", "1", "true"):
                return self.submit(request, session, draft)
            error = MESSAGES["attestation"]
        return self.review_page(request, session, draft, error)

    def review_page(
        self, request: Request, session: Session, draft: Draft, error: str | None
    ) -> HTMLResponse:
        v = self.version(request)
        title = self.t(request, "review.title")
        attest_id = self.input_id("attest", v)
        err_id = f"{attest_id}-error"
        described = f' aria-invalid="true" aria-describedby="{err_id}"' if error else ""
        error_html = (
            f'<span class="error" id="{err_id}" data-testid="'
            f'{self.testid(request, "attestation-error")}">{esc(error)}</span>'
            if error
            else ""
        )
        checkbox = (
            f'<div class="attest"><input type="checkbox" id="{attest_id}" name="attest" '
            f'value="on" data-testid="{self.testid(request, "attestation-checkbox")}"{described}>'
            f' <label for="{attest_id}">{esc(self.t(request, "review.attest"))}</label>'
            f"{error_html}</div>"
        )
        slugs = [s.slug for s in self.steps]
        hidden = {"case_id": draft.case_id} if self.case_id_hidden() else None
        content = (
            self.progress_html(request, len(self.steps))
            + f"<h1>{esc(title)}</h1>"
            + self.vehicle_banner_html(request, draft)
            + self.summary_html(request, self.review_rows(request, draft))
            + self.form_html(
                request,
                action=self.step_url(draft, self.review_slug),
                fields=[],
                submit=self.button_html(request, "review.submit", "submit-button", "primary"),
                hidden=hidden,
                back=self.step_url(draft, slugs[-1]),
                before=self.errors_summary_html(request, 1 if error else 0) + checkbox,
            )
        )
        return self.page(request, title, content, session=session)

    def summary_html(self, request: Request, rows: list[tuple[str, str]]) -> str:
        items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows)
        return f'<dl class="summary">{items}</dl>'

    # ----------------------------------------------------------------- flow: submit

    def submit(self, request: Request, session: Session, draft: Draft) -> Response:
        """Record the submission, then either confirm it or (fault) drop the response with a 504."""
        cfg = self._cfg(request)
        reference = self._next_reference(cfg, draft.case_id)
        dropped = self.dice.happens(
            cfg.seed, "drop_after_submit", draft.case_id, cfg.drop_after_submit_rate
        )
        payload: dict[str, Any] = {key: draft.values.get(key) for key in PAYLOAD_KEYS}
        if draft.document:
            payload["document"] = dict(draft.document)
        self.ledger.record(
            LedgerEntry(
                oem=self.key,
                case_id=draft.case_id,
                vin=draft.vin,
                dealer_id=session.dealer_id,
                reference=reference,
                received_at=self.clock(),
                payload=payload,
                ui_version=cfg.ui_version,
                response_dropped=dropped,
            )
        )
        if dropped:
            return HTMLResponse(GATEWAY_TIMEOUT_PAGE, status_code=504)
        title = self.t(request, "confirm.title")
        content = self.confirmation_html(request, draft, reference)
        return self.page(request, title, content, session=session)

    def confirmation_html(self, request: Request, draft: Draft, reference: str) -> str:
        return (
            f'<h1 data-testid="{self.testid(request, "confirmation-title")}">'
            f"{esc(self.t(request, 'confirm.title'))}</h1>"
            f'<p class="confirmation">{esc(self.t(request, "confirm.ref_label"))}: '
            f'<strong data-testid="{self.testid(request, "reference-number")}">'
            f"{esc(reference)}</strong></p>"
            f"<p>{esc(self.t(request, 'review.case_label'))}: {esc(draft.case_id)} · "
            f"VIN {esc(draft.vin)}</p>"
            f'<p><a href="{self.paths["search"]}">{esc(self.t(request, "nav.new"))}</a> · '
            f'<a href="{self.paths["lookup"]}">{esc(self.t(request, "nav.lookup"))}</a></p>'
        )

    # ----------------------------------------------------------------- flow: lookup

    async def lookup(self, request: Request) -> Response:
        session, redirect = self.authenticated(request)
        if redirect:
            return redirect
        query = request.query_params.get("q", "").strip()
        spec = FieldSpec(
            "query",
            "q",
            (self.texts["v1"]["lookup.label"], self.texts["v2"]["lookup.label"]),
        )
        title = self.t(request, "lookup.title")
        form = self.form_html(
            request,
            action=self.paths["lookup"],
            fields=[self.field_view(request, spec, query, None)],
            submit=self.button_html(request, "lookup.button", "lookup-button", "primary"),
            method="get",
        )
        results = ""
        if query:
            entries = self.ledger.find(query, dealer_id=session.dealer_id)
            if entries:
                headers = [
                    self.t(request, "review.case_label"),
                    "VIN",
                    self.t(request, "lookup.reference"),
                    self.t(request, "lookup.submitted"),
                    self.t(request, "lookup.status"),
                ]
                rows = [
                    [
                        e.case_id,
                        e.vin,
                        e.reference,
                        e.received_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                        self.t(request, "lookup.received"),
                    ]
                    for e in entries
                ]
                results = self.table_html(request, headers, rows)
            else:
                results = (
                    f'<p role="status" data-testid="{self.testid(request, "lookup-empty")}">'
                    f"{esc(self.t(request, 'lookup.none').format(query=query))}</p>"
                )
        content = f"<h1>{esc(title)}</h1>{form}{results}"
        return self.page(request, title, content, session=session)


def is_local_path(path: str) -> bool:
    return path.startswith("/") and not path.startswith("//")


class FaultMiddleware:
    """Injects latency and HTTP 503s into every portal request except the admin API."""

    def __init__(self, app: ASGIApp, portal: Portal) -> None:
        self.app = app
        self.portal = portal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith("/__admin") or path == "/favicon.ico":
            await self.app(scope, receive, send)
            return
        portal = self.portal
        cfg = portal.config
        cookies = Request(scope).cookies
        key = portal.fault_key(scope["method"], path, cookies)
        state = scope.setdefault("state", {})
        state["sandbox_config"] = cfg
        state["sandbox_fault_key"] = key
        if cfg.latency_ms:
            await asyncio.sleep(cfg.latency_ms / 1000)
        if portal.dice.happens(cfg.seed, "error", key, cfg.error_rate):
            response = HTMLResponse(SERVICE_UNAVAILABLE_PAGE, status_code=503)
            response.headers["Retry-After"] = "30"
            await response(scope, receive, send)
            return
        if portal.dice.happens(cfg.seed, "garbage", key, cfg.garbage_rate):
            await HTMLResponse(GARBAGE_PAGE, status_code=200)(scope, receive, send)
            return
        await self.app(scope, receive, send)


GARBAGE_PAGE = """<!doctype html>
<html><head><title>Just a moment...</title></head>
<body><div id="cf-wrapper"><h1>Checking your browser before accessing the site.</h1>
<p>This process is automatic. &#x2591;&#x2592;&#x2593; ray id 7f3a9c0e1d</p></div></body></html>"""

SERVICE_UNAVAILABLE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>503 Service Temporarily Unavailable</title></head>
<body style="font-family: sans-serif; margin: 3rem">
<h1>503 Service Temporarily Unavailable</h1>
<p>The server is temporarily unable to service your request. Please try again later.</p>
<hr><address>portal-gateway</address></body></html>"""

GATEWAY_TIMEOUT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>504 Gateway Time-out</title></head>
<body style="font-family: sans-serif; margin: 3rem">
<h1>504 Gateway Time-out</h1>
<p>The upstream server did not respond in time.</p>
<hr><address>portal-gateway</address></body></html>"""

POPUP_CSS = """
.sbx-overlay{position:fixed;inset:0;z-index:2147483000;display:flex;align-items:center;
justify-content:center;background:rgba(0,0,0,.45);pointer-events:auto}
.sbx-overlay[hidden]{display:none}
.sbx-dialog{max-width:26rem;padding:1.25rem 1.5rem;box-shadow:0 10px 40px rgba(0,0,0,.35)}
"""

# One overlay at a time: the first queued pop-up shows (now or after the delay); dismissing it
# shows the next. On kestrel the session-expiry warning is scheduled from the idle time left and
# "stay signed in" pings the keep-alive endpoint before re-arming the timer.
POPUP_SCRIPT = """<script>
(function () {
  var cfg = __CFG__;
  var queue = Array.prototype.slice.call(document.querySelectorAll('[data-popup][data-queued]'));
  function anyVisible() { return document.querySelector('[data-popup]:not([hidden])') !== null; }
  function show(el) {
    if (!el.hidden) { return; }
    if (anyVisible()) { if (queue.indexOf(el) < 0) { queue.unshift(el); } return; }
    el.hidden = false;
  }
  function showNext() {
    while (queue.length) { var el = queue.shift(); if (el.hidden) { show(el); return; } }
  }
  var visibleNow = queue.filter(function (el) { return !el.hidden; });
  queue = queue.filter(function (el) { return el.hidden; });
  function armWarning(seconds) {
    var el = document.querySelector('[data-popup="session"]');
    if (el && seconds !== null && seconds !== undefined) {
      window.setTimeout(function () { show(el); }, Math.max(0, seconds) * 1000);
    }
  }
  document.querySelectorAll('[data-popup] [data-dismiss]').forEach(function (button) {
    button.addEventListener('click', function () {
      var overlay = button.closest('[data-popup]');
      overlay.hidden = true;
      var kind = overlay.getAttribute('data-popup');
      if (kind === 'cookie') { document.cookie = cfg.consent + '=1; path=/; SameSite=Lax'; }
      if (kind === 'session' && cfg.keepalive) {
        fetch(cfg.keepalive, {method: 'POST', credentials: 'same-origin'}).then(function () {
          armWarning(cfg.ttl - cfg.warnWindow);
        });
      }
      showNext();
    });
  });
  if (!visibleNow.length && queue.length) {
    window.setTimeout(showNext, cfg.delay);
  }
  if (cfg.warnAt !== null && cfg.warnAt > 0) { armWarning(cfg.warnAt); }
})();
</script>"""
