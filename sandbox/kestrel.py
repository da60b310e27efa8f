"""Kestrel Trucks' sandbox portal "Kestrel WarrantyNet": dense fieldsets, expiring sessions, upload.

Flow: /session/new (user ID + password) → /warranty → /warranty/search (chassis VIN) →
"Begin claim" → /warranty/claim/{draft}/step-1 (dealer RO number = CRM case id, repair date,
odometer, part number, labor hours) → /warranty/claim/{draft}/step-2 (complaint, cause,
correction, supporting document upload: required) → /warranty/claim/{draft}/step-3 (attestation +
"Submit claim") → confirmation with ``KT/004217/B`` (v2: ``KST-004217-B``).
Earlier submissions: /warranty/claims?q=<RO number or VIN>.

The server-side session expires after ``session_ttl_s`` of inactivity (sliding); a dialog warns
``min(60 s, ttl/3)`` before, and its button pings ``POST /session/keepalive``. After expiry any
page redirects to ``/session/new?next=...&expired=1``; drafts survive a re-login.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox.portal import FieldSpec, FormLayout, Portal, StepSpec


class KestrelPortal(Portal):
    """Kestrel Trucks: charcoal and safety orange, compact monospace fieldsets, session timer."""

    key = "kestrel"
    name = "Kestrel Trucks"
    brand = "Kestrel WarrantyNet"
    session_cookie = "KTSESSIONID"
    consent_cookie = "kt_cookies_ok"
    sessions_expire = True
    paths = {
        "login": "/session/new",
        "logout": "/session/end",
        "keepalive": "/session/keepalive",
        "home": "/warranty",
        "search": "/warranty/search",
        "start": "/warranty/claim",
        "claim": "/warranty/claim",
        "lookup": "/warranty/claims",
    }
    login_fields = (
        FieldSpec("username", "user_id", ("User ID", "Operator ID")),
        FieldSpec("password", "pwd", ("Password", "PIN / password"), kind="password"),
    )
    search_fields = (FieldSpec("vin", "chassis_vin", ("Chassis VIN", "VIN / chassis number")),)
    steps = (
        StepSpec(
            "step-1",
            ("Claim — repair data", "Repair record"),
            (
                FieldSpec("case_id", "ro", ("Dealer RO number", "Repair order #")),
                FieldSpec(
                    "repair_date",
                    "repair_dt",
                    ("Repair date", "Date repaired (YYYY-MM-DD)"),
                    hint=("YYYY-MM-DD", None),
                ),
                FieldSpec(
                    "mileage", "odo_miles", ("Odometer (miles)", "Odometer reading"), "number"
                ),
                FieldSpec("part_number", "part_no", ("Part number", "Failed part")),
                FieldSpec("labor_hours", "labor_hrs", ("Labor hours", "Labor (hrs)"), "number"),
            ),
        ),
        StepSpec(
            "step-2",
            ("Claim — narrative and documents", "Narrative & attachments"),
            (
                FieldSpec(
                    "complaint", "complaint_txt", ("Complaint", "Driver complaint"), "textarea"
                ),
                FieldSpec("cause", "cause_txt", ("Cause", "Failure cause"), "textarea"),
                FieldSpec(
                    "correction", "correction_txt", ("Correction", "Corrective action"), "textarea"
                ),
                FieldSpec(
                    "document", "document", ("Supporting document", "Attach document"), "file"
                ),
            ),
        ),
    )
    review_slug = "step-3"
    form_layout = FormLayout(
        rows="fieldset",
        field_class="kt-row",
        error_tag="span",
        error_class="kt-err",
        actions_class="kt-actions",
    )
    id_prefix = {"v1": "kt_", "v2": "kst-"}
    models = ("K-Haul 900", "Ridgeback", "T-Line 550", "Ironwing")
    texts = {
        "v1": {
            "login.title": "WarrantyNet log on",
            "login.button": "Log on",
            "login.error": "Log on failed: unknown user ID or wrong password.",
            "login.expired": "Your session has expired. Please log on again.",
            "home.title": "Warranty desk",
            "home.welcome": "Dealer {dealer} logged on.",
            "nav.new": "New claim",
            "nav.lookup": "Filed claims",
            "nav.logout": "Log off",
            "search.title": "Vehicle search",
            "search.button": "Search",
            "search.start": "Begin claim",
            "search.results_title": "Search result",
            "search.not_found": "VIN {vin} is not registered with Kestrel Trucks.",
            "step.next": "Next",
            "step.back": "Back",
            "review.title": "Claim — review and submit",
            "review.attest": "I attest this claim complies with the Kestrel warranty policy",
            "review.submit": "Submit claim",
            "review.case_label": "Dealer RO number",
            "confirm.title": "Claim filed",
            "confirm.ref_label": "Kestrel claim no.",
            "lookup.title": "Filed claims",
            "lookup.label": "RO number or VIN",
            "lookup.button": "Find",
            "lookup.reference": "Kestrel claim no.",
            "lookup.submitted": "Filed (UTC)",
            "lookup.status": "Status",
            "lookup.received": "FILED",
            "lookup.none": "No filed claims for {query}.",
            "errors.summary": "{count} error(s): see fields marked below.",
            "notfound.title": "Claim not found",
            "document.attached": "Attached",
            "session.timer": "Session",
            "popup.cookie.title": "Cookie notice",
            "popup.cookie.body": "WarrantyNet stores a session cookie on this device.",
            "popup.cookie.button": "OK",
            "popup.survey.title": "Dealer satisfaction survey",
            "popup.survey.body": "Help us improve WarrantyNet: 5 questions.",
            "popup.survey.button": "Close survey",
            "popup.session.title": "Session about to expire",
            "popup.session.body": "Your WarrantyNet session will expire due to inactivity.",
            "popup.session.button": "Stay logged on",
        },
        "v2": {
            "login.title": "WarrantyNet sign on",
            "login.button": "Sign on",
            "login.error": "Log on failed: unknown user ID or wrong password.",
            "login.expired": "Your session has expired. Please log on again.",
            "home.title": "Claims workspace",
            "home.welcome": "Operator for dealer {dealer}.",
            "nav.new": "Create claim",
            "nav.lookup": "Claim register",
            "nav.logout": "Sign off",
            "search.title": "Find vehicle",
            "search.button": "Retrieve",
            "search.start": "New claim for this vehicle",
            "search.results_title": "Vehicle record",
            "search.not_found": "VIN {vin} is not registered with Kestrel Trucks.",
            "step.next": "Proceed",
            "step.back": "Return",
            "review.title": "Final check",
            "review.attest": "I agree to the warranty policy terms",
            "review.submit": "File claim",
            "review.case_label": "Repair order #",
            "confirm.title": "Claim accepted",
            "confirm.ref_label": "Claim ID",
            "lookup.title": "Claim register",
            "lookup.label": "Search filed claims",
            "lookup.button": "Search",
            "lookup.reference": "Claim ID",
            "lookup.submitted": "Accepted (UTC)",
            "lookup.status": "Status",
            "lookup.received": "ACCEPTED",
            "lookup.none": "Register has no entry for {query}.",
            "errors.summary": "Correct {count} field(s) to proceed.",
            "notfound.title": "Claim not found",
            "document.attached": "On file",
            "session.timer": "Time left",
            "popup.cookie.title": "Cookies on this site",
            "popup.cookie.body": "We use one cookie to keep your session.",
            "popup.cookie.button": "Accept cookies",
            "popup.survey.title": "Dealer survey",
            "popup.survey.body": "Got two minutes?",
            "popup.survey.button": "Skip",
            "popup.session.title": "Session timeout warning",
            "popup.session.body": "You will be signed off shortly.",
            "popup.session.button": "Extend session",
        },
    }

    def input_id(self, name: str, version: str) -> str:
        # Kestrel's v1 markup is old-school snake_case ids; v2 moved to kebab-case.
        return f"kt_{name}" if version == "v1" else f"kst-{name.replace('_', '-')}"

    def extra_routes(self) -> list[Route]:
        return [Route(self.paths["keepalive"], self.keepalive, methods=["POST"])]

    async def keepalive(self, request: Request) -> JSONResponse:
        """Extend the session (any authenticated request does; this one returns the time left)."""
        session, _ = self.session_for(request)
        if session is None:
            return JSONResponse({"error": "session expired"}, status_code=401)
        return JSONResponse({"remaining_s": self.config.session_ttl_s})
