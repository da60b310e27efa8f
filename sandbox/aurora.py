"""Aurora Automotive's sandbox portal, "Aurora ServiceHub": a card-style wizard with TOTP sign-in.

Flow: /auth/signin (work email + password) → /auth/verify (6-digit TOTP code) → /home →
/service/lookup (VIN + "Your case reference" = CRM case id, which then travels as a hidden
field) → "Open case" → /service/wizard/{draft}/visit (repair date, mileage, labor hours) →
/service/wizard/{draft}/story (complaint, cause, correction, part number) →
/service/wizard/{draft}/summary (attestation + "Send to Aurora") → confirmation with
``AUR-7KQ2M9XD`` (v2: ``AU-7KQ2-M9XD``). Earlier submissions: /service/history?q=<case or VIN>.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

import pyotp
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from sandbox import accounts
from sandbox.portal import (
    FieldSpec,
    FieldView,
    Portal,
    Session,
    StepSpec,
    cell,
    esc,
    is_local_path,
)


class AuroraPortal(Portal):
    """Aurora Automotive: purple gradient, rounded cards, labels above inputs, progress bar."""

    key = "aurora"
    name = "Aurora Automotive"
    brand = "Aurora ServiceHub"
    session_cookie = "aurora_sid"
    consent_cookie = "aurora_consent"
    needs_totp = True
    paths = {
        "login": "/auth/signin",
        "verify": "/auth/verify",
        "logout": "/auth/signout",
        "home": "/home",
        "search": "/service/lookup",
        "start": "/service/cases",
        "claim": "/service/wizard",
        "lookup": "/service/history",
    }
    login_fields = (
        FieldSpec("username", "email", ("Work email", "Email address")),
        FieldSpec("password", "password", ("Password", "Account password"), kind="password"),
    )
    otp_field = FieldSpec("otp", "otp", ("Authentication code", "6-digit code"))
    search_fields = (
        FieldSpec("vin", "vin", ("Vehicle VIN", "VIN")),
        FieldSpec("case_id", "caseRef", ("Your case reference", "CRM case number")),
    )
    steps = (
        StepSpec(
            "visit",
            ("Visit details", "Service visit"),
            (
                FieldSpec("repair_date", "serviceDate", ("Repair date", "Service date"), "date"),
                FieldSpec("mileage", "odometer", ("Mileage", "Odometer (km)"), kind="number"),
                FieldSpec(
                    "labor_hours", "laborHours", ("Labor hours", "Labour hours"), kind="number"
                ),
            ),
        ),
        StepSpec(
            "story",
            ("What happened", "Diagnosis story"),
            (
                FieldSpec("complaint", "complaint", ("Customer complaint", "Concern"), "textarea"),
                FieldSpec("cause", "cause", ("Cause", "Diagnosis"), "textarea"),
                FieldSpec("correction", "correction", ("Correction", "Fix applied"), "textarea"),
                FieldSpec("part_number", "partNo", ("Part number", "Part no.")),
            ),
        ),
    )
    review_slug = "summary"
    id_prefix = {"v1": "au-", "v2": "aurora2-"}
    models = ("Lumen", "Polaris", "Borealis", "Zenith")
    texts = {
        "v1": {
            "login.title": "Sign in to ServiceHub",
            "login.button": "Continue",
            "login.error": "We couldn't sign you in with that email and password.",
            "login.expired": "Your session has ended. Please sign in again.",
            "verify.title": "Two-step verification",
            "verify.intro": "Enter the code from your authenticator app.",
            "verify.button": "Verify",
            "verify.error": "That code didn't work. Check your authenticator app and try again.",
            "home.title": "Welcome back",
            "home.welcome": "You are signed in for dealer {dealer}.",
            "nav.new": "New case",
            "nav.lookup": "Case history",
            "nav.logout": "Sign out",
            "search.title": "Find a vehicle",
            "search.button": "Look up vehicle",
            "search.start": "Open case",
            "search.results_title": "Vehicle",
            "search.not_found": "We couldn't find a vehicle with VIN {vin}.",
            "step.next": "Save and continue",
            "step.back": "Back",
            "review.title": "Review your case",
            "review.attest": "I attest that this case is accurate",
            "review.submit": "Send to Aurora",
            "review.case_label": "Your case reference",
            "confirm.title": "Case received",
            "confirm.ref_label": "Aurora case number",
            "lookup.title": "Case history",
            "lookup.label": "Case reference or VIN",
            "lookup.button": "Search",
            "lookup.reference": "Aurora case number",
            "lookup.submitted": "Sent",
            "lookup.status": "Status",
            "lookup.received": "Received",
            "lookup.none": "No cases found for {query}.",
            "errors.summary": "Some answers need fixing ({count}).",
            "notfound.title": "Case not found",
            "document.attached": "Attached",
            "popup.cookie.title": "Your privacy choices",
            "popup.cookie.body": "Aurora and partners use cookies to run ServiceHub.",
            "popup.cookie.button": "Accept",
            "popup.survey.title": "Rate your experience",
            "popup.survey.body": "Tell us how ServiceHub is working for your workshop.",
            "popup.survey.button": "Maybe later",
            "popup.session.title": "Session expiring soon",
            "popup.session.body": "You've been inactive for a while.",
            "popup.session.button": "Continue session",
        },
        "v2": {
            "login.title": "ServiceHub sign-in",
            "login.button": "Next",
            "login.error": "We couldn't sign you in with that email and password.",
            "login.expired": "Your session has ended. Please sign in again.",
            "verify.title": "Confirm it's you",
            "verify.intro": "Open your authenticator and type the current code.",
            "verify.button": "Confirm code",
            "verify.error": "That code didn't work. Check your authenticator app and try again.",
            "home.title": "Workshop home",
            "home.welcome": "Dealer {dealer}",
            "nav.new": "Open a case",
            "nav.lookup": "My submissions",
            "nav.logout": "Log out",
            "search.title": "Vehicle search",
            "search.button": "Search vehicle",
            "search.start": "Start case",
            "search.results_title": "Vehicle match",
            "search.not_found": "We couldn't find a vehicle with VIN {vin}.",
            "step.next": "Next step",
            "step.back": "Previous step",
            "review.title": "Check before sending",
            "review.attest": "I confirm this case is accurate",
            "review.submit": "Submit case",
            "review.case_label": "CRM case number",
            "confirm.title": "Thanks — case logged",
            "confirm.ref_label": "Case ID",
            "lookup.title": "My submissions",
            "lookup.label": "Find a submission",
            "lookup.button": "Find",
            "lookup.reference": "Case ID",
            "lookup.submitted": "Logged at",
            "lookup.status": "State",
            "lookup.received": "Logged",
            "lookup.none": "Nothing matches {query}.",
            "errors.summary": "Please fix {count} answer(s).",
            "notfound.title": "Case not found",
            "document.attached": "Attached",
            "popup.cookie.title": "Privacy settings",
            "popup.cookie.body": "We use cookies to keep ServiceHub working.",
            "popup.cookie.button": "Agree",
            "popup.survey.title": "How are we doing?",
            "popup.survey.body": "A short survey helps us improve.",
            "popup.survey.button": "Dismiss",
            "popup.session.title": "Are you still working?",
            "popup.session.body": "Your session will end soon.",
            "popup.session.button": "I'm still here",
        },
    }
    css = """
body{margin:0;font-family:'Segoe UI',Helvetica,Arial,sans-serif;color:#221a33;
background:linear-gradient(180deg,#2e1065 0,#5b21b6 14rem,#f5f3ff 14rem) no-repeat,#f5f3ff}
.au-top{display:flex;justify-content:space-between;align-items:center;padding:1rem 2rem;color:#fff}
.au-brand{font-size:1.3rem;font-weight:600}
.au-top nav a{color:#ede9fe;margin-left:1.2rem;text-decoration:none;font-size:.95rem}
main.au-card{background:#fff;border-radius:18px;max-width:40rem;margin:1rem auto 3rem;
padding:2rem 2.5rem;box-shadow:0 20px 50px rgba(46,16,101,.25)}
h1{font-weight:600;font-size:1.5rem;margin-top:0}
.au-field{display:flex;flex-direction:column;margin-bottom:1rem}
.au-field label{font-size:.85rem;font-weight:600;margin-bottom:.3rem;color:#4c1d95}
.au-field input,.au-field textarea{border:1px solid #c4b5fd;border-radius:10px;
padding:.55rem .7rem;font-size:1rem}
.au-field .au-error{color:#be185d;font-size:.85rem;margin:.25rem 0 0}
.error-summary{background:#fdf2f8;color:#9d174d;border-radius:10px;padding:.7rem 1rem;
margin-bottom:1rem}
.notice{background:#ede9fe;border-radius:10px;padding:.7rem 1rem}
button{background:#6d28d9;color:#fff;border:0;border-radius:999px;padding:.6rem 1.6rem;
font-size:1rem;cursor:pointer}
.au-actions{display:flex;gap:1rem;align-items:center;flex-direction:row-reverse;
justify-content:flex-end}
ol.au-progress{display:flex;gap:.5rem;list-style:none;padding:0;margin:0 0 1.2rem}
ol.au-progress li{flex:1;height:6px;border-radius:3px;background:#ddd6fe}
ol.au-progress li.done{background:#6d28d9}
.au-results{display:grid;gap:.8rem}
.au-result{border:1px solid #ddd6fe;border-radius:14px;padding:1rem}
dl.summary dt{font-size:.8rem;color:#6b21a8;margin-top:.6rem}
dl.summary dd{margin:0;font-size:1rem}
.vehicle{background:#f5f3ff;border-radius:8px;padding:.4rem .7rem;display:inline-block}
.sbx-aurora-dialog{background:#fff;border-radius:18px;font-family:'Segoe UI',sans-serif}
.sbx-aurora-dialog button{background:#6d28d9}
"""

    def extra_routes(self) -> list[Route]:
        return [Route(self.paths["verify"], self.verify, methods=["GET", "POST"])]

    async def verify(self, request: Request) -> Response:
        """Second sign-in page: the dealer's current TOTP code (±1 step of clock drift)."""
        session, expired = self.session_for(request)
        if session is None:
            return self._login_redirect(request, expired=expired)
        if session.verified:
            return RedirectResponse(self.paths["home"], status_code=303)
        error = None
        if request.method == "POST":
            form = await request.form()
            code = str(form.get("otp", "")).strip().replace(" ", "")
            secret = accounts.credentials(self.key, session.dealer_id).totp_secret or ""
            if code.isdigit() and pyotp.TOTP(secret).verify(code, valid_window=1):
                session.verified = True
                next_path = str(form.get("next", ""))
                target = next_path if is_local_path(next_path) else self.paths["home"]
                return RedirectResponse(target, status_code=303)
            error = self.t(request, "verify.error")
        view = self.field_view(request, self.otp_field, "", error)
        next_path = request.query_params.get("next", "")
        content = (
            f"<h1>{esc(self.t(request, 'verify.title'))}</h1>"
            f"<p>{esc(self.t(request, 'verify.intro'))}</p>"
            + self.form_html(
                request,
                action=self.paths["verify"] + (f"?next={quote(next_path)}" if next_path else ""),
                fields=[view],
                submit=self.button_html(request, "verify.button", "verify-button", "primary"),
                hidden={"next": next_path},
            )
        )
        return self.page(request, self.t(request, "verify.title"), content)

    def layout_html(
        self, request: Request, title: str, content: str, session: Session | None, popups: str
    ) -> str:
        nav = ""
        if session is not None:
            nav = (
                f'<nav aria-label="Main"><a href="{self.paths["search"]}">'
                f"{esc(self.t(request, 'nav.new'))}</a>"
                f'<a href="{self.paths["lookup"]}">{esc(self.t(request, "nav.lookup"))}</a>'
                f'<a href="{self.paths["logout"]}">{esc(self.t(request, "nav.logout"))}</a></nav>'
            )
        body = (
            f'<div class="au-top"><span class="au-brand">◐ Aurora ServiceHub</span>{nav}</div>'
            f'<main class="au-card">{content}</main>{popups}'
        )
        return self.document_html(request, title, body, "aurora")

    def progress_html(self, request: Request, index: int) -> str:
        total = len(self.steps) + 1
        items = "".join(f'<li class="{"done" if i <= index else ""}"></li>' for i in range(total))
        return f'<ol class="au-progress" aria-label="Step {index + 1} of {total}">{items}</ol>'

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
        blocks = "".join(
            f'<div class="au-field"><label for="{f.input_id}">{esc(f.label)}</label>'
            f"{self.input_html(f)}{self.error_html(f, 'p', 'au-error')}</div>"
            for f in fields
        )
        hidden_html = "".join(
            f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">'
            for k, v in (hidden or {}).items()
        )
        enctype = ' enctype="multipart/form-data"' if multipart else ""
        back_html = (
            f'<a href="{back}" class="au-back">{esc(self.t(request, "step.back"))}</a>'
            if back
            else ""
        )
        return (
            f'<form method="{method}" action="{action}"{enctype} novalidate>{before}{blocks}'
            f'{after}{hidden_html}<div class="au-actions">{submit}{back_html}</div></form>'
        )

    def results_html(self, request: Request, vin: str, vehicle: str, start_form: str) -> str:
        return (
            f'<div class="au-results"><article class="au-result" '
            f'data-testid="{self.testid(request, "vehicle-card")}">'
            f"<h2>{esc(vehicle)}</h2><p>VIN {esc(vin)}</p>{start_form}</article></div>"
        )

    def table_html(self, request: Request, headers: list[str], rows: list[list[str]]) -> str:
        # Aurora lists submissions as cards, each a definition list: same data, other markup.
        cards = "".join(
            '<article class="au-result" role="listitem"><dl class="summary">'
            + "".join(
                f"<dt>{esc(h)}</dt><dd>{cell(c)}</dd>" for h, c in zip(headers, row, strict=True)
            )
            + "</dl></article>"
            for row in rows
        )
        return (
            f'<div class="au-results" role="list" '
            f'data-testid="{self.testid(request, "results-table")}">{cards}</div>'
        )
