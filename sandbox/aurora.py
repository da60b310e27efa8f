"""Aurora Automotive's sandbox portal, "Aurora ServiceHub": a card-style wizard with TOTP sign-in.

Flow: /auth/signin (work email + password) → /auth/verify (6-digit TOTP code) → /home →
/service/lookup (VIN + "Your case reference" = CRM case id, which then travels as a hidden
field) → "Open case" → /service/wizard/{draft}/visit (repair date, mileage, labor hours) →
/service/wizard/{draft}/story (complaint, cause, correction, part number) →
/service/wizard/{draft}/summary (attestation + "Send to Aurora") → confirmation with
``AUR-7KQ2M9XD`` (v2: ``AU-7KQ2-M9XD``). Earlier submissions: /service/history?q=<case or VIN>.
"""

from __future__ import annotations

from urllib.parse import quote

import pyotp
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from sandbox import accounts
from sandbox.portal import FieldSpec, FormLayout, Portal, StepSpec, is_local_path


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
    form_layout = FormLayout(
        rows="stacked",
        field_class="au-field",
        error_tag="p",
        error_class="au-error",
        actions_class="au-actions",
        back_class="au-back",
    )
    nav = ("search", "lookup", "logout")
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

    def extra_routes(self) -> list[Route]:
        return [Route(self.paths["verify"], self.verify, methods=["GET", "POST"])]

    async def verify(self, request: Request) -> Response:
        """Second sign-in page: the dealer's current TOTP code (±1 step of clock drift)."""
        session, expired = self.session_for(request)
        if session is None:
            return self.login_redirect(request, expired=expired)
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
        next_path = request.query_params.get("next", "")
        return self.render(
            request,
            "aurora/verify.html",
            self.t(request, "verify.title"),
            action=self.paths["verify"] + (f"?next={quote(next_path)}" if next_path else ""),
            otp_field=self.field_view(request, self.otp_field, "", error),
            next_path=next_path,
        )
