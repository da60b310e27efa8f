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

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox.portal import FieldSpec, FieldView, Markup, Portal, Session, StepSpec, cell, esc


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
    css = """
body{margin:0;font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:14px;
background:#2b2b2b;color:#f0f0f0}
.kt-bar{background:#e86a10;color:#111;display:flex;justify-content:space-between;
align-items:center;padding:.35rem 1rem}
.kt-bar strong{letter-spacing:.2em}
.kt-bar nav a{color:#111;margin-right:1rem;font-weight:bold}
.kt-timer{background:#111;color:#ffb070;padding:.15rem .5rem}
main{padding:1rem 1.5rem;max-width:64rem}
h1{font-size:1.1rem;text-transform:uppercase;color:#ffb070;border-left:6px solid #e86a10;
padding-left:.5rem}
fieldset{border:1px solid #666;margin:0 0 1rem;padding:.6rem 1rem}
.kt-row{display:grid;grid-template-columns:14rem 22rem auto;gap:.6rem;align-items:start;
margin:.3rem 0}
.kt-row label{text-align:right;padding-top:.2rem;color:#ddd}
.kt-row input,.kt-row textarea{background:#1c1c1c;color:#fff;border:1px solid #888;padding:.25rem;
font-family:inherit}
.kt-err{display:inline-block;background:#5a1e00;color:#ffcfb0;border:1px solid #e86a10;
padding:.1rem .4rem}
.error-summary{background:#5a1e00;border:1px solid #e86a10;padding:.4rem .8rem;margin-bottom:.8rem}
.notice{background:#3d3d00;border:1px solid #cc0;padding:.4rem .8rem}
button{background:#e86a10;color:#111;border:2px solid #111;text-transform:uppercase;
font-family:inherit;
font-weight:bold;padding:.3rem 1rem;cursor:pointer}
.kt-actions{display:flex;gap:1rem;align-items:center}
.kt-actions a{color:#ffb070}
table.kt-grid{border-collapse:collapse}
table.kt-grid th,table.kt-grid td{border:1px solid #666;padding:.2rem .6rem;text-align:left}
table.kt-grid th{background:#444;text-transform:uppercase;font-size:.8rem}
dl.summary{display:grid;grid-template-columns:14rem auto;gap:.2rem 1rem}
dl.summary dt{color:#aaa}
.vehicle{color:#ffb070}
a{color:#ffb070}
.attest{margin:.6rem 0}
.sbx-kestrel-dialog{background:#1c1c1c;color:#fff;border:3px solid #e86a10;font-family:monospace}
.sbx-kestrel-dialog button{background:#e86a10}
"""

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

    def layout_html(
        self, request: Request, title: str, content: str, session: Session | None, popups: str
    ) -> str:
        nav = timer = ""
        if session is not None:
            nav = (
                f'<nav aria-label="Main"><a href="{self.paths["home"]}">'
                f"{esc(self.t(request, 'home.title'))}</a>"
                f'<a href="{self.paths["search"]}">{esc(self.t(request, "nav.new"))}</a>'
                f'<a href="{self.paths["lookup"]}">{esc(self.t(request, "nav.lookup"))}</a>'
                f'<a href="{self.paths["logout"]}">{esc(self.t(request, "nav.logout"))}</a></nav>'
            )
            ttl = int(self._cfg(request).session_ttl_s)
            timer = (
                f'<span class="kt-timer" data-testid="{self.testid(request, "session-timer")}" '
                f'data-remaining="{ttl}">{esc(self.t(request, "session.timer"))} '
                f'<span id="kt-countdown">{ttl // 60:02d}:{ttl % 60:02d}</span></span>'
                + TIMER_SCRIPT
            )
        body = (
            f'<div class="kt-bar"><strong>KESTREL TRUCKS · WARRANTYNET</strong>{nav}{timer}</div>'
            f"<main>{content}</main>{popups}"
        )
        return self.document_html(request, title, body, "kestrel")

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
        rows = "".join(
            f'<div class="kt-row"><label for="{f.input_id}">{esc(f.label)}</label>'
            f"<div>{self.input_html(f)}"
            + (f'<div class="hint">{esc(f.hint)}</div>' if f.hint else "")
            + f"</div><div>{self.error_html(f, 'span', 'kt-err')}</div></div>"
            for f in fields
        )
        fieldset = f"<fieldset>{rows}</fieldset>" if rows else ""
        hidden_html = "".join(
            f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">'
            for k, v in (hidden or {}).items()
        )
        enctype = ' enctype="multipart/form-data"' if multipart else ""
        back_html = f'<a href="{back}">{esc(self.t(request, "step.back"))}</a>' if back else ""
        return (
            f'<form method="{method}" action="{action}"{enctype} novalidate>{before}{fieldset}'
            f'{after}{hidden_html}<div class="kt-actions">{submit}{back_html}</div></form>'
        )

    def results_html(self, request: Request, vin: str, vehicle: str, start_form: str) -> str:
        return self.table_html(
            request, ["Chassis VIN", "Model", "Action"], [[vin, vehicle, Markup(start_form)]]
        )

    def table_html(self, request: Request, headers: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{esc(h)}</th>" for h in headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in rows
        )
        return (
            f'<table class="kt-grid" data-testid="{self.testid(request, "results-table")}">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )


# Counts the idle time down in the header; purely informative (the server decides expiry).
TIMER_SCRIPT = """<script>
(function () {
  var el = document.getElementById('kt-countdown');
  var left = parseInt(el.parentNode.getAttribute('data-remaining'), 10);
  window.setInterval(function () {
    left = Math.max(0, left - 1);
    el.textContent = String(Math.floor(left / 60)).padStart(2, '0') + ':' +
      String(left % 60).padStart(2, '0');
  }, 1000);
})();
</script>"""
