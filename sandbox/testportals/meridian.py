"""Meridian Motors' service cloud: a single-page app that talks to a JSON API by ``fetch``.

What it does unlike the sandbox: after the login page nothing navigates; the app draws its form
in two client-side steps, submits by ``fetch``, shows the reference in a modal dialog and errors
in one ``role=alert`` summary; the history searches by the dealer's reference through the API.
Every page carries ``<body class="meridian">`` (the adapter's version fingerprint).
"""

from __future__ import annotations

from html import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from sandbox.testportals.base import TestPortal

CATEGORIES = ["powertrain", "electrical", "body", "other"]

_APP_JS = r"""
const $ = (html) => { const t = document.createElement('template'); t.innerHTML = html.trim();
  return t.content.firstChild; };
const root = document.getElementById('app');
const field = (id, label, type='text') =>
  `<p><label for="${id}">${label}</label> <input id="${id}" type="${type}"></p>`;
function nav() {
  document.querySelector('header').append($('<a href="/logout">Log out</a>'));
}
function newClaim() {
  root.innerHTML = `<h1>New claim</h1><section id="s1"><h2>Vehicle</h2>
    ${field('vin', 'Vehicle VIN')}${field('ref', 'Your reference')}
    ${field('date', 'Repair date', 'date')}${field('km', 'Mileage')}
    <button id="next">Continue</button></section>`;
  document.getElementById('next').onclick = () => {
    document.getElementById('s1').hidden = true;
    root.append($(`<section id="s2"><h2>Repair</h2>
      <p><label for="complaint">Complaint</label> <textarea id="complaint"></textarea></p>
      ${field('cause', 'Cause')}${field('correction', 'Correction')}
      ${field('hours', 'Labour hours')}${field('part', 'Part number')}
      <p><label for="cat">Category</label> <select id="cat"><option value="">-</option>
      ${CATS.map(c => `<option value="${c}">${c}</option>`).join('')}</select></p>
      <div role="radiogroup" aria-label="Coverage">
        <label><input type="radio" name="cov" value="basic"> Basic</label>
        <label><input type="radio" name="cov" value="extended"> Extended</label></div>
      <p><label><input type="checkbox" id="vor"> Vehicle off road</label></p>
      <button id="send">Submit claim</button></section>`));
    document.getElementById('send').onclick = send;
  };
}
async function send() {
  const v = (id) => document.getElementById(id).value;
  const cov = document.querySelector('input[name=cov]:checked');
  const body = {vin: v('vin'), case_id: v('ref'), repair_date: v('date'), mileage: v('km'),
    complaint: v('complaint'), cause: v('cause'), correction: v('correction'),
    labor_hours: v('hours'), part_number: v('part'), category: v('cat'),
    coverage: cov ? cov.value : '', vehicle_off_road: document.getElementById('vor').checked};
  document.querySelectorAll('[role=alert]').forEach(e => e.remove());
  let r;
  try { r = await fetch('/api/claims', {method: 'POST', body: JSON.stringify(body),
    headers: {'content-type': 'application/json'}}); } catch (e) { return; }
  if (r.status === 201) {
    const data = await r.json();
    setTimeout(() => document.body.append($(`<div role="dialog" aria-label="Claim submitted">
      <p>Claim ${data.reference} submitted.</p><button>Close</button></div>`)), 150);
  } else if (r.status === 422) {
    const data = await r.json();
    root.prepend($(`<div role="alert" class="summary">There is a problem:
      ${data.errors.join(' ')}</div>`));
  }
}
function history() {
  root.innerHTML = `<h1>History</h1>${field('q', 'Dealer reference')}<button id="find">Find</button>
    <div id="out"></div>`;
  document.getElementById('find').onclick = async () => {
    const q = document.getElementById('q').value;
    const r = await fetch('/api/claims?ref=' + encodeURIComponent(q));
    const data = await r.json();
    const out = document.getElementById('out');
    out.innerHTML = data.claims.length
      ? `<ul data-testid="history">${data.claims.map(c =>
          `<li>${c.case_id} · ${c.vin} · ${c.reference}</li>`).join('')}</ul>`
      : '<p data-testid="history-empty">No claims match.</p>';
  };
}
setTimeout(() => { nav(); (location.pathname === '/app/history' ? history : newClaim)(); }, 100);
"""


def _html(title: str, body: str, script: str = "") -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang='en'><head><title>{title} - Meridian</title></head>"
        f"<body class='meridian'><header>Meridian Service Cloud </header>{body}"
        f"{f'<script>{script}</script>' if script else ''}</body></html>"
    )


class MeridianPortal(TestPortal):
    """Meridian's app and API; `app` is its Starlette application."""

    oem = "meridian"
    prefix = "MR-2026-"

    def __init__(self) -> None:
        super().__init__()
        self.app = Starlette(
            routes=[
                Route("/login", self.login, methods=["GET", "POST"]),
                Route("/logout", lambda r: RedirectResponse("/login", 303)),
                Route("/app", self.shell),
                Route("/app/history", self.shell),
                Route("/api/claims", self.api_claims, methods=["GET", "POST"]),
            ]
        )

    async def login(self, request: Request) -> Response:
        note = ""
        if request.method == "POST":
            form = await request.form()
            dealer = self.dealer_for(str(form.get("email", "")), str(form.get("password", "")))
            if dealer is not None:
                return await self.open_session(dealer, "/app")
            note = "<div role='alert'>Invalid email or password.</div>"
        return _html(
            "Log in",
            f"<main><h1>Log in</h1>{note}<form method='post'>"
            "<p><label for='email'>Email</label> <input id='email' name='email'></p>"
            "<p><label for='pw'>Password</label> <input id='pw' type='password' name='password'>"
            "</p><button>Log in</button></form></main>",
        )

    async def shell(self, request: Request) -> Response:
        if self.dealer_of(request) is None:
            return RedirectResponse("/login", 303)
        script = f"const CATS = {CATEGORIES!r};" + _APP_JS
        return _html("App", "<main id='app'>Loading…</main>", script)

    async def api_claims(self, request: Request) -> Response:
        dealer = self.dealer_of(request)
        if dealer is None:
            return JSONResponse({"error": "signed out"}, status_code=401)
        if request.method == "GET":
            ref = request.query_params.get("ref", "")
            claims = [e for e in self.find(case_id=ref) if e.dealer_id == dealer] if ref else []
            return JSONResponse(
                {
                    "claims": [
                        {"case_id": e.case_id, "vin": e.vin, "reference": e.reference}
                        for e in claims
                    ]
                }
            )
        body = await request.json()
        errors = self._validate(body)
        if errors:
            return JSONResponse({"errors": errors}, status_code=422)
        claim = {k: v for k, v in body.items()}
        claim["vin"] = str(claim["vin"]).upper()
        entry = self.record(dealer, claim)
        if self.knobs.drop_after_submit:
            return HTMLResponse("<h1>502 Bad Gateway</h1>", status_code=502)
        return JSONResponse({"reference": entry.reference}, status_code=201)

    @staticmethod
    def _validate(body: dict) -> list[str]:
        errors = []
        for key in ("vin", "case_id", "repair_date", "mileage", "complaint", "part_number"):
            if not str(body.get(key, "")).strip():
                errors.append(f"{escape(key)} is required.")
        if str(body.get("part_number", "")).startswith("XX"):
            errors.append("Part number is not a Meridian part.")
        if body.get("category") not in CATEGORIES:
            errors.append("Category must be chosen.")
        if body.get("coverage") not in ("basic", "extended"):
            errors.append("Coverage must be chosen.")
        return errors
