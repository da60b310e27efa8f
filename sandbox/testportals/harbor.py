"""Harbor Trucks' dealer hub: server-rendered pages, the claim form inside an iframe.

What it does unlike the sandbox: no version meta; the form lives in an ``<iframe>``; submitting
asks ``confirm()``; the confirmation shows the reference only in a link's ``href``; the form has a
select, a radio group, a checkbox and a date input; errors come back as one page-level summary
(HTTP 422, no field marked invalid); earlier claims are searched by VIN only.
"""

from __future__ import annotations

from html import escape
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from sandbox.testportals.base import TestPortal

CATEGORIES = {"pt": "Powertrain", "el": "Electrical", "bd": "Body", "ot": "Other"}
COVERAGE = {"basic": "Basic warranty", "extended": "Extended warranty"}
_TEXT = [
    ("ro", "Dealer RO number"),
    ("vin", "VIN"),
    ("odo", "Odometer"),
    ("labour", "Labour hours"),
    ("part", "Failed part"),
]
_AREAS = [("complaint", "Complaint"), ("cause", "Cause"), ("correction", "Correction")]


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang='en'><head><title>{escape(title)} · Harbor Hub</title>"
        "<style>body{font:14px sans-serif;margin:0} header{background:#124;color:#fff;"
        "padding:8px} header a{color:#fff} main{padding:12px} iframe{width:100%;height:720px;"
        "border:0} .errornote{border:2px solid #a00;padding:6px;color:#a00}</style></head>"
        f"<body><header>Harbor Hub {body.split('<!--nav-->')[0]}</header>"
        f"<main>{body.split('<!--nav-->')[-1]}</main></body></html>",
        status_code=status,
    )


class HarborPortal(TestPortal):
    """Harbor Trucks' hub; `app` is its Starlette application."""

    oem = "harbor"
    prefix = "HB-"

    def __init__(self) -> None:
        super().__init__()
        self.app = Starlette(
            routes=[
                Route("/", lambda r: RedirectResponse("/hub", 303)),
                Route("/signin", self.signin, methods=["GET", "POST"]),
                Route("/signout", self.signout),
                Route("/sso", self.sso, methods=["GET", "POST"]),
                Route("/hub", self.hub),
                Route("/hub/embed/claim", self.claim_form, methods=["GET", "POST"]),
                Route("/hub/embed/sent/{ref}", self.sent),
                Route("/hub/claims", self.claims),
                Route("/hub/claims/{ref}", self.claim),
            ]
        )

    def _nav(self) -> str:
        return (
            "<nav><a href='/hub'>New claim</a> · <a href='/hub/claims'>My claims</a> · "
            "<a href='/signout'>Sign out</a></nav><!--nav-->"
        )

    async def signin(self, request: Request) -> Response:
        error = ""
        if self.knobs.single_sign_on:
            # The same server under another host name: the group's corporate sign-on.
            return RedirectResponse(f"http://localhost:{request.url.port}/sso", 303)
        if request.method == "POST":
            form = await request.form()
            dealer = self.dealer_for(str(form.get("user", "")), str(form.get("pass", "")))
            if dealer is not None and self.knobs.captcha_at_signin:
                return _page(
                    "Security check",
                    "<h1>Just checking</h1><p>Please confirm you are not a robot.</p>"
                    "<form method='post' action='/signin'><div class='g-recaptcha' "
                    "data-sitekey='6Lc-harbor-test'></div><p><input type='submit' "
                    "value='Continue'></p></form>",
                )
            if dealer is not None:
                return await self.open_session(dealer, "/hub")
            error = "<p class='flash' role='alert'>Those details did not work.</p>"
        return _page(
            "Sign in",
            "<!--nav--><h1>Dealer sign-in</h1>"
            f"{error}<form method='post'><p><label>Username <input name='user'></label></p>"
            "<p><label>Password <input name='pass' type='password'></label></p>"
            "<p><input type='submit' value='Sign in'></p></form>",
        )

    async def sso(self, request: Request) -> Response:
        return _page(
            "Group sign-on",
            "<h1>Harbor Group single sign-on</h1><form method='post'>"
            "<p><label>Work e-mail <input name='email' type='email'></label></p>"
            "<p><label>Passphrase <input name='secret' type='password'></label></p>"
            "<p><button>Continue</button></p></form>",
        )

    async def signout(self, request: Request) -> Response:
        return RedirectResponse("/signin", 303)

    async def hub(self, request: Request) -> Response:
        if self.dealer_of(request) is None:
            return RedirectResponse("/signin", 303)
        return _page(
            "New claim",
            f"{self._nav()}<h1>New warranty claim</h1>"
            "<iframe id='claim-frame' title='Claim form' src='/hub/embed/claim'></iframe>",
        )

    def _form(self, values: dict[str, Any], errors: list[str]) -> HTMLResponse:
        def v(name: str) -> str:
            return escape(str(values.get(name, "")), quote=True)

        rows = "".join(
            f"<p><label>{label} <input name='{n}' value='{v(n)}'></label></p>" for n, label in _TEXT
        )
        rows += f"<p><label>Date of repair <input type='date' name='date' value='{v('date')}'>"
        rows += "</label></p>"
        rows += "".join(
            f"<p><label>{label}<br><textarea name='{n}'>{v(n)}</textarea></label></p>"
            for n, label in _AREAS
        )
        opts = "".join(
            f"<option value='{k}'{' selected' if values.get('cat') == k else ''}>{t}</option>"
            for k, t in CATEGORIES.items()
        )
        rows += "<p><label for='cat'>Category</label> <select id='cat' name='cat'>"
        rows += f"<option value=''>Choose…</option>{opts}</select></p>"
        rows += "<fieldset><legend>Coverage</legend>"
        rows += "".join(
            f"<label><input type='radio' name='cov' value='{k}'> {t}</label> "
            for k, t in COVERAGE.items()
        )
        rows += "</fieldset><p><label><input type='checkbox' name='vor'> Vehicle off road"
        rows += "</label></p>"
        note = ""
        if errors:
            items = "".join(f"<li>{escape(e)}</li>" for e in errors)
            note = f"<div class='errornote'>Please correct the errors below.<ul>{items}</ul></div>"
        return HTMLResponse(
            "<!doctype html><html><head><title>claim</title></head><body>"
            f"{note}<form method='post' onsubmit=\"return confirm('Send this claim to Harbor?')\">"
            f"{rows}<p><button type='submit'>Send claim</button></p></form></body></html>",
            status_code=422 if errors else 200,
        )

    async def claim_form(self, request: Request) -> Response:
        dealer = self.dealer_of(request)
        if dealer is None:
            return RedirectResponse("/signin", 303)
        if request.method == "GET":
            return self._form({}, [])
        form = {k: str(v).strip() for k, v in (await request.form()).items()}
        errors = self._validate(form)
        if errors:
            return self._form(form, errors)
        entry = self.record(
            dealer,
            {
                "case_id": form["ro"],
                "vin": form["vin"].upper(),
                "repair_date": form["date"],
                "mileage": int(form["odo"]),
                "labor_hours": float(form["labour"]),
                "part_number": form["part"],
                "complaint": form["complaint"],
                "cause": form["cause"],
                "correction": form["correction"],
                "category": form["cat"],
                "coverage": form["cov"],
                "vehicle_off_road": form.get("vor") == "on",
            },
        )
        if self.knobs.drop_after_submit:
            return HTMLResponse("<h1>502 Bad Gateway</h1>", status_code=502)
        return RedirectResponse(f"/hub/embed/sent/{entry.reference}", 303)

    @staticmethod
    def _validate(form: dict[str, str]) -> list[str]:
        errors = []
        for name, label in [*_TEXT, *_AREAS, ("date", "Date of repair")]:
            if not form.get(name):
                errors.append(f"{label}: this field is required.")
        if form.get("odo") and not form["odo"].isdigit():
            errors.append("Odometer: enter a whole number.")
        if form.get("part", "").startswith("XX"):
            errors.append("Failed part: not a Harbor part number.")
        if form.get("cat") not in CATEGORIES:
            errors.append("Category: choose a category.")
        if form.get("cov") not in COVERAGE:
            errors.append("Coverage: choose the coverage.")
        return errors

    async def sent(self, request: Request) -> Response:
        ref = escape(request.path_params["ref"])
        return HTMLResponse(
            "<!doctype html><html><body><h2>Thank you, your claim was received.</h2>"
            f"<p><a href='/hub/claims/{ref}' target='_top'>Open the claim</a></p></body></html>"
        )

    async def claims(self, request: Request) -> Response:
        if self.dealer_of(request) is None:
            return RedirectResponse("/signin", 303)
        vin = request.query_params.get("vin", "").strip()
        found = ""
        if vin:
            mine = [e for e in self.ledger.entries() if e.dealer_id == self.dealer_of(request)]
            rows = [e for e in mine if vin.upper() in (e.vin, e.reference.upper())]
            if rows:
                found = "<table class='results'><tr><th>VIN</th><th>Odometer</th><th>Claim</th>"
                found += "".join(
                    f"<tr><td>{e.vin}</td><td>{e.payload['mileage']}</td>"
                    f"<td><a href='/hub/claims/{e.reference}'>{e.reference}</a></td></tr>"
                    for e in rows
                )
                found += "</table>"
            else:
                found = "<p class='empty'>No claims match.</p>"
        return _page(
            "My claims",
            f"{self._nav()}<h1>My claims</h1><form method='get'><label>Search by VIN or claim "
            f"<input name='vin' value='{escape(vin, quote=True)}'></label> "
            f"<button>Search</button></form>{found}",
        )

    async def claim(self, request: Request) -> Response:
        if self.dealer_of(request) is None:
            return RedirectResponse("/signin", 303)
        ref = escape(request.path_params["ref"])
        return _page("Claim", f"{self._nav()}<h1>Claim {ref}</h1>")
