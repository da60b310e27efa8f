"""Northwind Motors' sandbox portal, "Northwind Dealer Connect": a classic table-layout dealer site.

Flow: /login (dealer code + username + password) → /dashboard → /claims/new (VIN search) →
"Start claim" → /claims/{draft}/repair-order (RO number = CRM case id, repair date, mileage,
part number) → /claims/{draft}/diagnosis (complaint, cause, correction, labor hours) →
/claims/{draft}/review (attestation + "Submit claim") → confirmation with ``NW-2026-004217``
(v2: ``NWM-26-0004217``). Earlier submissions: /claims/history?q=<case id or VIN>.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request

from sandbox.portal import FieldSpec, FieldView, Markup, Portal, Session, StepSpec, cell, esc


class NorthwindPortal(Portal):
    """Northwind Motors: navy/white, serif, forms laid out as label | input | error table rows."""

    key = "northwind"
    name = "Northwind Motors"
    brand = "Northwind Dealer Connect"
    session_cookie = "NWSESSION"
    consent_cookie = "nw_cookie_consent"
    paths = {
        "login": "/login",
        "logout": "/logout",
        "home": "/dashboard",
        "search": "/claims/new",
        "start": "/claims/start",
        "claim": "/claims",
        "lookup": "/claims/history",
    }
    login_fields = (
        FieldSpec("dealer_id", "dealer_code", ("Dealer code", "Dealer number")),
        FieldSpec("username", "username", ("Username", "User ID")),
        FieldSpec("password", "password", ("Password", "Passphrase"), kind="password"),
    )
    search_fields = (FieldSpec("vin", "vin", ("VIN", "Vehicle identification number")),)
    steps = (
        StepSpec(
            "repair-order",
            ("Step 1 of 3: Repair order", "1/3 · Repair order details"),
            (
                FieldSpec("case_id", "ro_number", ("RO number", "Dealer reference")),
                FieldSpec(
                    "repair_date",
                    "repair_date",
                    ("Repair date (YYYY-MM-DD)", "Date of repair"),
                    hint=(None, "Format: YYYY-MM-DD"),
                ),
                FieldSpec("mileage", "mileage", ("Mileage", "Odometer (km)"), kind="number"),
                FieldSpec("part_number", "part_number", ("Part number", "Causal part no.")),
            ),
        ),
        StepSpec(
            "diagnosis",
            ("Step 2 of 3: Diagnosis", "2/3 · Technician story"),
            (
                FieldSpec("complaint", "complaint", ("Complaint", "Customer concern"), "textarea"),
                FieldSpec("cause", "cause", ("Cause", "Root cause"), "textarea"),
                FieldSpec(
                    "correction", "correction", ("Correction", "Repair performed"), "textarea"
                ),
                FieldSpec(
                    "labor_hours", "labor_hours", ("Labor hours", "Labour time (h)"), kind="number"
                ),
            ),
        ),
    )
    review_slug = "review"
    id_prefix = {"v1": "nw-", "v2": "claim-"}
    models = ("Ranger", "Harbor", "Summit", "Coastline", "Meridian")
    texts = {
        "v1": {
            "login.title": "Dealer sign in",
            "login.button": "Sign in",
            "login.error": "Invalid dealer code, username or password.",
            "login.expired": "Your session has expired. Please sign in again.",
            "home.title": "Dealer dashboard",
            "home.welcome": "Signed in as dealer {dealer}.",
            "nav.new": "New warranty claim",
            "nav.lookup": "Submitted claims",
            "nav.logout": "Sign out",
            "search.title": "Find vehicle",
            "search.button": "Search",
            "search.start": "Start claim",
            "search.results_title": "Vehicle found",
            "search.not_found": "No vehicle found for VIN {vin}.",
            "step.next": "Next",
            "step.back": "Back",
            "review.title": "Step 3 of 3: Review and submit",
            "review.attest": "I certify that this claim is accurate and complete",
            "review.submit": "Submit claim",
            "review.case_label": "RO number",
            "confirm.title": "Claim submitted",
            "confirm.ref_label": "Claim reference",
            "lookup.title": "Submitted claims",
            "lookup.label": "Case ID or VIN",
            "lookup.button": "Look up",
            "lookup.reference": "Claim reference",
            "lookup.submitted": "Submitted",
            "lookup.status": "Status",
            "lookup.received": "Received",
            "lookup.none": "No submitted claims match {query}.",
            "errors.summary": "Please correct the {count} highlighted field(s).",
            "notfound.title": "Claim not found",
            "document.attached": "Attached",
            "popup.cookie.title": "We use cookies",
            "popup.cookie.body": (
                "Northwind uses cookies to keep you signed in and to improve the site."
            ),
            "popup.cookie.button": "Accept all cookies",
            "popup.survey.title": "Tell us how we're doing",
            "popup.survey.body": "Would you take a 2-minute survey about Dealer Connect?",
            "popup.survey.button": "No thanks",
            "popup.session.title": "Your session is about to expire",
            "popup.session.body": "For your security you will be signed out soon.",
            "popup.session.button": "Stay signed in",
        },
        "v2": {
            "login.title": "Log in to Dealer Connect",
            "login.button": "Log in",
            "login.error": "Invalid dealer code, username or password.",
            "login.expired": "Your session has expired. Please log in again.",
            "home.title": "Overview",
            "home.welcome": "Dealer {dealer}",
            "nav.new": "Start a claim",
            "nav.lookup": "Claim history",
            "nav.logout": "Log out",
            "search.title": "Vehicle lookup",
            "search.button": "Find vehicle",
            "search.start": "Create claim",
            "search.results_title": "Matching vehicle",
            "search.not_found": "No vehicle found for VIN {vin}.",
            "step.next": "Continue",
            "step.back": "Previous",
            "review.title": "3/3 · Check and send",
            "review.attest": "I confirm the information above is correct",
            "review.submit": "Send claim",
            "review.case_label": "Dealer reference",
            "confirm.title": "Claim received",
            "confirm.ref_label": "Confirmation number",
            "lookup.title": "Claim history",
            "lookup.label": "Search claims",
            "lookup.button": "Search",
            "lookup.reference": "Confirmation number",
            "lookup.submitted": "Received at",
            "lookup.status": "State",
            "lookup.received": "Received",
            "lookup.none": "Nothing found for {query}.",
            "errors.summary": "{count} field(s) need your attention.",
            "notfound.title": "Claim not found",
            "document.attached": "Attached",
            "popup.cookie.title": "Cookie preferences",
            "popup.cookie.body": "We use cookies for sign-in and analytics.",
            "popup.cookie.button": "Accept all",
            "popup.survey.title": "Quick feedback",
            "popup.survey.body": "How easy was it to file your last claim?",
            "popup.survey.button": "Not now",
            "popup.session.title": "Still there?",
            "popup.session.body": "You will be logged out soon because of inactivity.",
            "popup.session.button": "Keep me signed in",
        },
    }
    css = """
body{margin:0;font-family:Georgia,'Times New Roman',serif;background:#eef2f7;color:#1b2433}
.nw-header{background:#0b2a5b;color:#fff;padding:.6rem 1.5rem;display:flex;align-items:center;
gap:2rem}
.nw-logo{font-weight:bold;letter-spacing:.15em;font-size:1.1rem}
.nw-header nav a{color:#cfe0ff;margin-right:1.2rem;text-decoration:none}
main{background:#fff;margin:1.5rem auto;max-width:58rem;padding:1.5rem 2rem;
border:1px solid #c5cfdd}
h1{color:#0b2a5b;font-size:1.4rem;border-bottom:2px solid #0b2a5b;padding-bottom:.3rem}
table.nw-form th{text-align:right;padding:.35rem .8rem;vertical-align:top;width:14rem}
table.nw-form td{padding:.35rem .4rem;vertical-align:top}
table.nw-form input[type=text],table.nw-form input[type=password],
table.nw-form textarea{width:18rem}
.nw-err{color:#b00020;font-size:.9rem;width:16rem}
.error-summary{background:#fde8ea;border:1px solid #b00020;color:#b00020;padding:.5rem .8rem;
margin:.6rem 0}
.notice{background:#fff6d6;border:1px solid #d4a300;padding:.5rem .8rem}
button{background:#0b2a5b;color:#fff;border:0;padding:.45rem 1.2rem;font-family:inherit;
cursor:pointer}
.nw-actions{margin-top:1rem;display:flex;gap:1rem;align-items:center}
table.nw-grid{border-collapse:collapse;width:100%}
table.nw-grid th,table.nw-grid td{border:1px solid #c5cfdd;padding:.35rem .6rem;text-align:left}
table.nw-grid th{background:#dfe7f3}
dl.summary{display:grid;grid-template-columns:14rem 1fr;gap:.25rem 1rem}
dl.summary dt{font-weight:bold;text-align:right}
.vehicle{color:#445;font-style:italic}
.sbx-northwind-dialog{background:#fff;border-top:6px solid #0b2a5b;font-family:Georgia,serif}
footer{text-align:center;color:#667;font-size:.8rem;margin-bottom:2rem}
"""

    def layout_html(
        self, request: Request, title: str, content: str, session: Session | None, popups: str
    ) -> str:
        nav = ""
        if session is not None:
            nav = (
                f'<nav aria-label="Main"><a href="{self.paths["home"]}">'
                f"{esc(self.t(request, 'home.title'))}</a>"
                f'<a href="{self.paths["search"]}">{esc(self.t(request, "nav.new"))}</a>'
                f'<a href="{self.paths["lookup"]}">{esc(self.t(request, "nav.lookup"))}</a>'
                f'<a href="{self.paths["logout"]}">{esc(self.t(request, "nav.logout"))}</a></nav>'
            )
        body = (
            f'<header class="nw-header"><span class="nw-logo">NORTHWIND MOTORS</span>{nav}</header>'
            f"<main>{content}</main>"
            f"<footer>Northwind Dealer Connect · sandbox · UI {self.version(request)}</footer>"
            f"{popups}"
        )
        return self.document_html(request, title, body, "nw")

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
            f'<tr><th scope="row"><label for="{f.input_id}">{esc(f.label)}</label></th>'
            f"<td>{self.input_html(f)}"
            + (f'<div class="hint">{esc(f.hint)}</div>' if f.hint else "")
            + f'</td><td class="nw-err">{self.error_html(f)}</td></tr>'
            for f in fields
        )
        table = f'<table class="nw-form"><tbody>{rows}</tbody></table>' if rows else ""
        hidden_html = "".join(
            f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">'
            for k, v in (hidden or {}).items()
        )
        enctype = ' enctype="multipart/form-data"' if multipart else ""
        back_html = (
            f'<a href="{back}" class="nw-back">{esc(self.t(request, "step.back"))}</a>'
            if back
            else ""
        )
        return (
            f'<form method="{method}" action="{action}"{enctype} novalidate>{before}{table}{after}'
            f'{hidden_html}<div class="nw-actions">{back_html}{submit}</div></form>'
        )

    def results_html(self, request: Request, vin: str, vehicle: str, start_form: str) -> str:
        return self.table_html(
            request, ["VIN", "Vehicle", ""], [[vin, vehicle, Markup(start_form)]]
        )

    def table_html(self, request: Request, headers: list[str], rows: list[list[str]]) -> str:
        head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in rows
        )
        return (
            f'<table class="nw-grid" data-testid="{self.testid(request, "results-table")}">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
