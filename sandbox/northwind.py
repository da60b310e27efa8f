"""Northwind Motors' sandbox portal, "Northwind Dealer Connect": a classic table-layout dealer site.

Flow: /login (dealer code + username + password) → /dashboard → /claims/new (VIN search) →
"Start claim" → /claims/{draft}/repair-order (RO number = CRM case id, repair date, mileage,
part number) → /claims/{draft}/diagnosis (complaint, cause, correction, labor hours) →
/claims/{draft}/review (attestation + "Submit claim") → confirmation with ``NW-2026-004217``
(v2: ``NWM-26-0004217``). Earlier submissions: /claims/history?q=<case id or VIN>.
"""

from __future__ import annotations

from sandbox.portal import FieldSpec, FormLayout, Portal, StepSpec


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
    form_layout = FormLayout(
        rows="table",
        fields_class="nw-form",
        error_cell_class="nw-err",
        error_tag="span",
        error_class="error",
        actions_class="nw-actions",
        back_class="nw-back",
        back_first=True,
    )
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
