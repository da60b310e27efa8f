"""Fixtures for the sandbox portal tests: one server and one Chromium per session, a page per test.

``portal_flow`` is a minimal reference driver written only from the user-facing names the
sandbox README documents (labels, button texts, dialog titles): if a label changes there, these
tests say so. It is a test aid, not an adapter.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from sandbox import SandboxServer
from sandbox.accounts import DealerCredentials, credentials
from submissions_pipeline.runner.config import default_chromium

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

#: The documented reference formats (sandbox/README.md), unanchored for searching page text.
REFERENCE_RE: dict[str, dict[str, str]] = {
    "northwind": {"v1": r"NW-\d{4}-\d{6}", "v2": r"NWM-\d{2}-\d{7}"},
    "aurora": {
        "v1": r"AUR-[0-9A-HJKMNP-TV-Z]{8}",
        "v2": r"AU-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}",
    },
    "kestrel": {"v1": r"KT/\d{6}/[A-Z]", "v2": r"KST-\d{6}-[A-Z]"},
}


def _chromium_path() -> str:
    """The runner's default browser (the headless shell), so the sandbox is tested on it."""
    path = default_chromium()
    if not os.path.exists(path):
        pytest.fail(f"{path} is not installed (make test installs it)")
    return path


@dataclass(frozen=True)
class FlowSpec:
    """The user-facing names one portal version shows, step by step (as documented)."""

    login_path: str
    login: dict[str, str]
    login_button: str
    search_path: str
    search: dict[str, str]
    search_button: str
    start_button: str
    steps: list[dict[str, str]]
    next_button: str
    attest: str
    submit_button: str
    confirmation: str
    lookup_path: str
    lookup_label: str
    lookup_button: str
    popups: dict[str, tuple[str, str]]
    login_error: str
    totp_label: str | None = None
    totp_button: str | None = None
    reference_testid: str = "reference-number"
    extra: dict[str, str] = field(default_factory=dict)


FLOWS: dict[tuple[str, str], FlowSpec] = {
    ("northwind", "v1"): FlowSpec(
        login_path="/login",
        login={"dealer_id": "Dealer code", "username": "Username", "password": "Password"},
        login_button="Sign in",
        search_path="/claims/new",
        search={"vin": "VIN"},
        search_button="Search",
        start_button="Start claim",
        steps=[
            {
                "case_id": "RO number",
                "repair_date": "Repair date (YYYY-MM-DD)",
                "mileage": "Mileage",
                "part_number": "Part number",
            },
            {
                "complaint": "Complaint",
                "cause": "Cause",
                "correction": "Correction",
                "labor_hours": "Labor hours",
            },
        ],
        next_button="Next",
        attest="I certify that this claim is accurate and complete",
        submit_button="Submit claim",
        confirmation="Claim submitted",
        lookup_path="/claims/history",
        lookup_label="Case ID or VIN",
        lookup_button="Look up",
        popups={
            "cookie": ("We use cookies", "Accept all cookies"),
            "survey": ("Tell us how we're doing", "No thanks"),
            "session": ("Your session is about to expire", "Stay signed in"),
        },
        login_error="Invalid dealer code, username or password.",
    ),
    ("northwind", "v2"): FlowSpec(
        login_path="/login",
        login={"dealer_id": "Dealer number", "username": "User ID", "password": "Passphrase"},
        login_button="Log in",
        search_path="/claims/new",
        search={"vin": "Vehicle identification number"},
        search_button="Find vehicle",
        start_button="Create claim",
        steps=[
            {
                "case_id": "Dealer reference",
                "repair_date": "Date of repair",
                "mileage": "Odometer (km)",
                "part_number": "Causal part no.",
            },
            {
                "complaint": "Customer concern",
                "cause": "Root cause",
                "correction": "Repair performed",
                "labor_hours": "Labour time (h)",
            },
        ],
        next_button="Continue",
        attest="I confirm the information above is correct",
        submit_button="Send claim",
        confirmation="Claim received",
        lookup_path="/claims/history",
        lookup_label="Search claims",
        lookup_button="Search",
        popups={
            "cookie": ("Cookie preferences", "Accept all"),
            "survey": ("Quick feedback", "Not now"),
            "session": ("Still there?", "Keep me signed in"),
        },
        login_error="Invalid dealer code, username or password.",
        reference_testid="qa_reference_number",
    ),
    ("aurora", "v1"): FlowSpec(
        login_path="/auth/signin",
        login={"username": "Work email", "password": "Password"},
        login_button="Continue",
        totp_label="Authentication code",
        totp_button="Verify",
        search_path="/service/lookup",
        search={"vin": "Vehicle VIN", "case_id": "Your case reference"},
        search_button="Look up vehicle",
        start_button="Open case",
        steps=[
            {"repair_date": "Repair date", "mileage": "Mileage", "labor_hours": "Labor hours"},
            {
                "complaint": "Customer complaint",
                "cause": "Cause",
                "correction": "Correction",
                "part_number": "Part number",
            },
        ],
        next_button="Save and continue",
        attest="I attest that this case is accurate",
        submit_button="Send to Aurora",
        confirmation="Case received",
        lookup_path="/service/history",
        lookup_label="Case reference or VIN",
        lookup_button="Search",
        popups={
            "cookie": ("Your privacy choices", "Accept"),
            "survey": ("Rate your experience", "Maybe later"),
            "session": ("Session expiring soon", "Continue session"),
        },
        login_error="We couldn't sign you in with that email and password.",
        extra={"totp_error": "That code didn't work. Check your authenticator app and try again."},
    ),
    ("aurora", "v2"): FlowSpec(
        login_path="/auth/signin",
        login={"username": "Email address", "password": "Account password"},
        login_button="Next",
        totp_label="6-digit code",
        totp_button="Confirm code",
        search_path="/service/lookup",
        search={"vin": "VIN", "case_id": "CRM case number"},
        search_button="Search vehicle",
        start_button="Start case",
        steps=[
            {
                "repair_date": "Service date",
                "mileage": "Odometer (km)",
                "labor_hours": "Labour hours",
            },
            {
                "complaint": "Concern",
                "cause": "Diagnosis",
                "correction": "Fix applied",
                "part_number": "Part no.",
            },
        ],
        next_button="Next step",
        attest="I confirm this case is accurate",
        submit_button="Submit case",
        confirmation="Thanks — case logged",
        lookup_path="/service/history",
        lookup_label="Find a submission",
        lookup_button="Find",
        popups={
            "cookie": ("Privacy settings", "Agree"),
            "survey": ("How are we doing?", "Dismiss"),
            "session": ("Are you still working?", "I'm still here"),
        },
        login_error="We couldn't sign you in with that email and password.",
        reference_testid="qa_reference_number",
    ),
    ("kestrel", "v1"): FlowSpec(
        login_path="/session/new",
        login={"username": "User ID", "password": "Password"},
        login_button="Log on",
        search_path="/warranty/search",
        search={"vin": "Chassis VIN"},
        search_button="Search",
        start_button="Begin claim",
        steps=[
            {
                "case_id": "Dealer RO number",
                "repair_date": "Repair date",
                "mileage": "Odometer (miles)",
                "part_number": "Part number",
                "labor_hours": "Labor hours",
            },
            {
                "complaint": "Complaint",
                "cause": "Cause",
                "correction": "Correction",
                "document": "Supporting document",
            },
        ],
        next_button="Next",
        attest="I attest this claim complies with the Kestrel warranty policy",
        submit_button="Submit claim",
        confirmation="Claim filed",
        lookup_path="/warranty/claims",
        lookup_label="RO number or VIN",
        lookup_button="Find",
        popups={
            "cookie": ("Cookie notice", "OK"),
            "survey": ("Dealer satisfaction survey", "Close survey"),
            "session": ("Session about to expire", "Stay logged on"),
        },
        login_error="Log on failed: unknown user ID or wrong password.",
    ),
    ("kestrel", "v2"): FlowSpec(
        login_path="/session/new",
        login={"username": "Operator ID", "password": "PIN / password"},
        login_button="Sign on",
        search_path="/warranty/search",
        search={"vin": "VIN / chassis number"},
        search_button="Retrieve",
        start_button="New claim for this vehicle",
        steps=[
            {
                "case_id": "Repair order #",
                "repair_date": "Date repaired (YYYY-MM-DD)",
                "mileage": "Odometer reading",
                "part_number": "Failed part",
                "labor_hours": "Labor (hrs)",
            },
            {
                "complaint": "Driver complaint",
                "cause": "Failure cause",
                "correction": "Corrective action",
                "document": "Attach document",
            },
        ],
        next_button="Proceed",
        attest="I agree to the warranty policy terms",
        submit_button="File claim",
        confirmation="Claim accepted",
        lookup_path="/warranty/claims",
        lookup_label="Search filed claims",
        lookup_button="Search",
        popups={
            "cookie": ("Cookies on this site", "Accept cookies"),
            "survey": ("Dealer survey", "Skip"),
            "session": ("Session timeout warning", "Extend session"),
        },
        login_error="Log on failed: unknown user ID or wrong password.",
        reference_testid="qa_reference_number",
    ),
}


def case_payload(**overrides: Any) -> dict[str, Any]:
    """A valid case payload in the pipeline's common shape."""
    payload: dict[str, Any] = {
        "repair_date": (date.today() - timedelta(days=3)).isoformat(),
        "mileage": 48213,
        "complaint": "Engine light on and rough idle when cold",
        "cause": "Cracked ignition coil on cylinder 3",
        "correction": "Replaced ignition coil and cleared codes",
        "labor_hours": 1.5,
        "part_number": "IC-4471-B",
    }
    payload.update(overrides)
    return payload


class PortalFlow:
    """Drives one portal version through Chromium by its documented user-facing names."""

    def __init__(self, server: SandboxServer, page: Page, oem: str, version: str = "v1") -> None:
        self.server = server
        self.page = page
        self.oem = oem
        self.version = version
        self.spec = FLOWS[(oem, version)]
        self.base = server.base_url(oem)
        self.reference_re = REFERENCE_RE[oem][version]

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base + path)

    def button(self, name: str) -> Any:
        return self.page.get_by_role("button", name=name, exact=True)

    def field(self, label: str) -> Any:
        return self.page.get_by_label(label, exact=True)

    def fill_login(self, creds: DealerCredentials, password: str | None = None) -> None:
        values = {
            "dealer_id": creds.dealer_id,
            "username": creds.username,
            "password": password if password is not None else creds.password,
        }
        for key, label in self.spec.login.items():
            self.field(label).fill(values[key])
        self.button(self.spec.login_button).click()

    def login(self, dealer_id: str = "D1001") -> DealerCredentials:
        creds = credentials(self.oem, dealer_id)
        self.goto(self.spec.login_path)
        self.fill_login(creds)
        if self.spec.totp_label:
            self.field(self.spec.totp_label).fill(creds.totp_code())
            self.button(self.spec.totp_button or "").click()
        self.page.wait_for_url(re.compile(r"/(dashboard|home|warranty)$"))
        return creds

    def search(self, vin: str, case_id: str) -> None:
        self.goto(self.spec.search_path)
        values = {"vin": vin, "case_id": case_id}
        for key, label in self.spec.search.items():
            self.field(label).fill(values[key])
        self.button(self.spec.search_button).click()

    def fill_step(self, index: int, case_id: str, payload: dict[str, Any]) -> None:
        for key, label in self.spec.steps[index].items():
            if key == "document":
                self.field(label).set_input_files(
                    files=[
                        {
                            "name": f"{case_id}.txt",
                            "mimeType": "text/plain",
                            "buffer": f"Repair report for {case_id}\n".encode(),
                        }
                    ]
                )
                continue
            value = case_id if key == "case_id" else payload[key]
            self.field(label).fill(str(value))
        self.button(self.spec.next_button).click()

    def fill_claim(self, vin: str, case_id: str, payload: dict[str, Any]) -> None:
        self.search(vin, case_id)
        self.button(self.spec.start_button).click()
        for index in range(len(self.spec.steps)):
            self.fill_step(index, case_id, payload)
        self.page.get_by_label(self.spec.attest).wait_for()

    def submit(self) -> None:
        self.page.get_by_label(self.spec.attest).check()
        self.button(self.spec.submit_button).click()

    def reference_in_page(self) -> str | None:
        match = re.search(self.reference_re, self.page.content())
        return match.group(0) if match else None

    def submit_case(self, vin: str, case_id: str, payload: dict[str, Any] | None = None) -> str:
        """Fill, submit and return the reference the confirmation page shows."""
        self.fill_claim(vin, case_id, payload or case_payload())
        self.submit()
        self.page.get_by_role("heading", name=self.spec.confirmation).wait_for()
        return self.page.get_by_test_id(self.spec.reference_testid).inner_text()

    def lookup(self, query: str) -> str:
        self.goto(self.spec.lookup_path)
        self.field(self.spec.lookup_label).fill(query)
        self.button(self.spec.lookup_button).click()
        self.page.wait_for_url(re.compile(r"\?q="))
        return self.page.locator("main").inner_text()

    def dialog(self, kind: str) -> Any:
        return self.page.get_by_role("dialog", name=self.spec.popups[kind][0])

    def dismiss(self, kind: str) -> None:
        self.dialog(kind).get_by_role("button", name=self.spec.popups[kind][1]).click()


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    """All three portals on free loopback ports for the whole session."""
    with SandboxServer() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> Iterator[SandboxServer]:
    """The session's sandbox with default knobs and empty ledgers for this test."""
    sandbox_server.reset()
    yield sandbox_server
    sandbox_server.reset()


@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    """One browser for this package's tests. Package scope, not session: Playwright's sync API
    keeps an event loop running on the main thread, so it must stop before later packages call
    ``asyncio.run`` (the runner does)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium_path(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    context = chromium.new_context()
    context.set_default_timeout(5_000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def portal_flow(sandbox: SandboxServer, page: Page) -> Callable[..., PortalFlow]:
    """Factory: ``portal_flow("kestrel", version="v2")`` drives that portal in this test's page."""

    def make(oem: str, version: str = "v1") -> PortalFlow:
        return PortalFlow(sandbox, page, oem, version)

    return make


@pytest.fixture
def make_payload() -> Callable[..., dict[str, Any]]:
    """Factory of valid case payloads; keyword arguments override fields."""
    return case_payload


@pytest.fixture
def documented_references() -> dict[str, dict[str, str]]:
    """OEM → version → reference regex as sandbox/README.md documents it (unanchored)."""
    return REFERENCE_RE
