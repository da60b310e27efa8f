"""Request handlers of the common portal flow: sign-in, home, VIN search, start, lookup.

The claim wizard itself (steps, review, submit) is in ``sandbox/claim.py``; both render through
the templates in ``sandbox/templates/pages``.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import ClassVar
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sandbox import accounts
from sandbox.pages import PortalPages
from sandbox.state import FieldSpec, Session
from sandbox.validation import normalize_vin, validate_field, vin_error


def is_local_path(path: str) -> bool:
    """Whether ``path`` stays on this portal (a ``next`` target must never leave it)."""
    return path.startswith("/") and not path.startswith("//")


class PortalFlow(PortalPages):
    """Sign-in, sessions as the handlers see them, home, VIN search and the lookup page."""

    #: Whether login needs a second TOTP page (aurora only).
    needs_totp: ClassVar[bool] = False

    # ----------------------------------------------------------------- sessions

    def login_redirect(self, request: Request, *, expired: bool) -> RedirectResponse:
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
            return None, self.login_redirect(request, expired=expired)
        if not session.verified:
            return None, RedirectResponse(self.paths["verify"], status_code=303)
        return session, None

    # ----------------------------------------------------------------- login

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
        return self.render(
            request,
            "pages/login.html",
            self.t(request, "login.title"),
            fields=[
                self.field_view(request, spec, form.get(spec.name, ""), None)
                for spec in self.login_fields
            ],
            next_path=form.get("next") or request.query_params.get("next", ""),
            notice=notice,
            error=error,
        )

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
        if dealer_id is None or self.config_for(request).reject_login:
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

    # ----------------------------------------------------------------- home, search

    async def home(self, request: Request) -> Response:
        session, redirect = self.authenticated(request)
        if redirect:
            return redirect
        return self.render(
            request, "pages/home.html", self.t(request, "home.title"), session=session
        )

    def search_page(
        self,
        request: Request,
        session: Session,
        *,
        form: Mapping[str, str] | None = None,
        errors: Mapping[str, str] | None = None,
        not_found_vin: str | None = None,
        vin: str | None = None,
        start: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        """The search form (with errors or a "not found" alert), or the vehicle found."""
        form, errors = form or {}, errors or {}
        return self.render(
            request,
            "pages/search.html",
            self.t(request, "search.title"),
            session=session,
            fields=[
                self.field_view(request, spec, form.get(spec.name, ""), errors.get(spec.key))
                for spec in self.search_fields
            ],
            error_count=len(errors),
            not_found_vin=not_found_vin,
            vin=vin,
            vehicle=self.vehicle_for(vin) if vin else None,
            start_hidden=start,
        )

    async def search(self, request: Request) -> Response:
        session, redirect = self.authenticated(request)
        if redirect:
            return redirect
        if request.method == "GET":
            return self.search_page(request, session)
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
            return self.search_page(request, session, form=form, errors=errors)
        # The slow back-end lookup: async, so other requests are served meanwhile.
        await asyncio.sleep(self.config_for(request).search_latency_s)
        vin = values["vin"]
        if vin.endswith("000000"):
            return self.search_page(request, session, form=form, not_found_vin=vin)
        start = {"vin": vin}
        if "case_id" in values:
            start["case_id"] = values["case_id"]
        return self.search_page(request, session, vin=vin, start=start)

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

    # ----------------------------------------------------------------- lookup

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
        headers: list[str] = []
        rows: list[list[str]] = []
        lag = timedelta(seconds=self.config_for(request).search_lag_s)
        indexed_until = self.clock() - lag  # what the portal's search index has caught up to
        if query:
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
                for e in self.ledger.find(query, dealer_id=session.dealer_id)
                if e.received_at <= indexed_until
            ]
        return self.render(
            request,
            "pages/lookup.html",
            self.t(request, "lookup.title"),
            session=session,
            query_field=self.field_view(request, spec, query, None),
            query=query,
            headers=headers,
            rows=rows,
        )
