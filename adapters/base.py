"""The templated steps every OEM adapter shares, driven by that OEM's versioned selector files.

A new OEM is a selector file per UI version plus a subclass naming its key and schedule; only
portals that really behave differently override a step.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ClassVar, TypeVar
from urllib.parse import urlparse

import pyotp
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator, Page, Response
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from adapters.selectors import LocatorSpec, SelectorSet, load_selector_sets
from submissions_pipeline.credentials import DealerCredentials
from submissions_pipeline.domain import Case, ReasonCode
from submissions_pipeline.domain.oem import OemSettings
from submissions_pipeline.runner.adapter import LookupResult, PortalAdapter, SecretSection
from submissions_pipeline.runner.errors import (
    AdapterBug,
    AuthFailure,
    InvalidData,
    SiteFlake,
)

#: The <meta> every portal page carries with its UI version.
VERSION_META = 'meta[name="portal-ui-version"]'

T = TypeVar("T")


#: Reads the version meta in one round trip (a locator count plus an attribute read is two).
_VERSION_JS = "(sel) => document.querySelector(sel)?.getAttribute('content') ?? null"


def _dismiss_any(popups: list[tuple[Locator, Locator]]) -> Callable[[], Awaitable[None]]:
    """One handler for every known pop-up: dismiss every one that is showing.

    Playwright checks each registered handler's locator before every action, so one handler
    over the union of the dialogs costs one check per action instead of one per pop-up.
    """

    async def dismiss() -> None:
        for dialog, button in popups:
            with contextlib.suppress(Exception):
                if await dialog.is_visible():
                    await button.click(timeout=2000)

    return dismiss


class TemplatedPortalAdapter(PortalAdapter):
    """Log in → search → form steps → review → submit → confirmation, from selector files."""

    #: Navigation timeout of the slow search step (the step's hard budget is the outer guard).
    search_timeout_ms: ClassVar[float] = 35_000

    def __init__(
        self,
        settings: OemSettings,
        folder: Path,
        selector_sets: dict[str, SelectorSet] | None = None,
    ):
        super().__init__(settings, folder)
        # One `<ui version>.json` per UI version in the OEM folder's `selectors/`.
        self.selector_sets = selector_sets or load_selector_sets(folder / "selectors")
        # Last main-document status per page: how a 5xx page is told from a real one.
        self._status: weakref.WeakKeyDictionary[Page, int] = weakref.WeakKeyDictionary()
        # Pages showing a search form nobody has typed into yet.
        self._fresh_search: weakref.WeakKeyDictionary[Page, bool] = weakref.WeakKeyDictionary()

    # ------------------------------------------------------------------ plumbing
    async def install_popup_handlers(self, page: Page) -> None:
        """Dismiss every known pop-up of every known version whenever one blocks an action."""
        seen: set[str] = set()
        popups: list[tuple[Locator, Locator]] = []
        for sel in self.selector_sets.values():
            for popup in sel.popups:
                key = f"{popup.dialog}|{popup.dismiss}"
                if key not in seen:
                    seen.add(key)
                    popups.append((popup.dialog.locate(page), popup.dismiss.locate(page)))
        if not popups:
            return
        union = popups[0][0]
        for dialog, _ in popups[1:]:
            union = union.or_(dialog)
        # The first visible one: a union matching two pop-ups must not be a strict-mode error.
        await page.add_locator_handler(union.filter(visible=True).first, _dismiss_any(popups))

    async def detect_version(self, page: Page) -> str:
        version = await self._read_version(page)
        if version is None:
            # Not a portal page at all (a CDN check, a maintenance page): the site, not us.
            self._check_status(page, "detect UI version")
            raise SiteFlake(
                f"{self.oem}: the page at {page.url} is not a portal page",
                reason=ReasonCode.SITE_PAGE_LOST,
            )
        if version not in self.selector_sets:
            raise AdapterBug(
                f"{self.oem} portal shows UI version {version!r}; known: "
                f"{sorted(self.selector_sets)}",
                reason=ReasonCode.UNKNOWN_UI_VERSION,
            )
        return version

    @staticmethod
    async def _read_version(page: Page) -> str | None:
        try:
            return await page.evaluate(_VERSION_JS, VERSION_META)
        except PlaywrightError as exc:
            # A document replaced under the read (a late redirect): read the one that stayed.
            if "context was destroyed" not in str(exc):
                raise
            with contextlib.suppress(PlaywrightError):
                await page.wait_for_load_state("domcontentloaded")
            return await page.evaluate(_VERSION_JS, VERSION_META)

    async def selectors(self, page: Page) -> SelectorSet:
        """The selector set for the UI version the page is showing."""
        return self.selector_sets[await self.detect_version(page)]

    def _check_status(self, page: Page, what: str) -> None:
        status = self._status.get(page, 200)
        if status >= 500:
            raise SiteFlake(
                f"{what}: portal answered HTTP {status}", reason=ReasonCode.SITE_HTTP_5XX
            )

    def _record_status(self, page: Page, response: Response | None) -> None:
        # The status of the document the page now shows: how a 5xx page is told from a real one.
        self._status[page] = response.status if response is not None else 200

    async def goto(self, page: Page, url: str, what: str) -> None:
        """Navigate and fail as a site flake on a 5xx page."""
        self._record_status(page, await page.goto(url, wait_until="domcontentloaded"))
        self._check_status(page, what)

    async def act(
        self, page: Page, spec: LocatorSpec, what: str, action: Callable[[Locator], Awaitable[T]]
    ) -> T:
        """Do `action` on the element, relying on Playwright's auto-wait; diagnose only on failure.

        Asking whether an element exists before every action doubles the round trips of a job;
        so the action goes first and a timeout is examined afterwards: no such element on a
        portal page is a changed UI (an adapter bug), a page that is not the portal at all (no
        version meta, a 5xx) is the site's fault, anything else stays a timeout.
        """
        loc = spec.locate(page)
        try:
            return await action(loc.first)
        except PlaywrightTimeoutError:
            if await loc.count() == 0:
                await self.detect_version(page)  # raises for a 5xx or a non-portal page
                raise AdapterBug(
                    f"{what} not found ({spec})", reason=ReasonCode.SELECTOR_NOT_FOUND
                ) from None
            raise

    async def require(self, page: Page, spec: LocatorSpec, what: str) -> Locator:
        """The element once it is on the page, or an adapter bug (see `act`)."""
        loc = spec.locate(page).first
        await self.act(page, spec, what, lambda el: el.wait_for(state="attached"))
        return loc

    async def click_and_wait(
        self, page: Page, spec: LocatorSpec, what: str, timeout_ms: float | None = None
    ) -> None:
        """Click something that submits a form and wait for the next page."""
        kwargs = {"timeout": timeout_ms} if timeout_ms else {}
        async with page.expect_navigation(wait_until="domcontentloaded", **kwargs) as nav:
            await self.act(page, spec, what, lambda el: el.click())
        self._record_status(page, await nav.value)
        self._check_status(page, what)

    def _path(self, page: Page) -> str:
        return urlparse(page.url).path

    # ------------------------------------------------------------------ values
    def value_for(self, key: str, case: Case) -> str:
        """The text to type into a field bound to our key `key`."""
        p = case.payload
        values = {
            "case_id": case.case_id,
            "vin": case.vin,
            "dealer_id": case.dealer_id,
            "repair_date": p.repair_date.isoformat(),
            "mileage": str(p.mileage),
            "complaint": p.complaint,
            "cause": p.cause,
            "correction": p.correction,
            "labor_hours": f"{p.labor_hours:g}",
            "part_number": p.part_number,
        }
        try:
            return values[key]
        except KeyError:
            raise AdapterBug(f"selector file binds unknown field {key!r}") from None

    def document_for(self, case: Case) -> dict:
        """The supporting document a portal with an upload field receives: the repair order."""
        body = (
            f"Repair order {case.case_id}\nVIN {case.vin}\nDealer {case.dealer_id}\n"
            f"Date {case.payload.repair_date}\nComplaint: {case.payload.complaint}\n"
            f"Cause: {case.payload.cause}\nCorrection: {case.payload.correction}\n"
        ).encode()
        return {
            "name": f"repair-order-{case.case_id}.txt",
            "mimeType": "text/plain",
            "buffer": body,
        }

    async def fill_fields(
        self, page: Page, fields: dict[str, LocatorSpec], case: Case, what: str
    ) -> None:
        for key, spec in fields.items():
            label = f"{what}: field {key}"
            if key == "document":
                doc = self.document_for(case)
                await self.act(page, spec, label, lambda el, d=doc: el.set_input_files(d))
            else:
                value = self.value_for(key, case)
                await self.act(page, spec, label, lambda el, v=value: el.fill(v))

    async def field_errors(self, page: Page) -> dict[str, str]:
        """Server-side validation messages, by the label of the field they belong to."""
        errors: dict[str, str] = {}
        invalid = page.locator('[aria-invalid="true"]')
        for i in range(await invalid.count()):
            el = invalid.nth(i)
            err_id = await el.get_attribute("aria-describedby")
            el_id = await el.get_attribute("id")
            label = el_id or "field"
            if el_id:
                lab = page.locator(f'label[for="{el_id}"]')
                if await lab.count():
                    label = (await lab.first.inner_text()).strip()
            message = ""
            if err_id:
                msg = page.locator(f'[id="{err_id.split()[0]}"]')
                if await msg.count():
                    message = (await msg.first.inner_text()).strip()
            errors[label] = message or "rejected by the portal"
        return errors

    async def raise_on_validation(self, page: Page, sel: SelectorSet, what: str) -> None:
        errors = await self.field_errors(page)
        if errors:
            keys = self._keys_by_label(sel)
            mapped = {keys.get(label, label): msg for label, msg in errors.items()}
            raise InvalidData(
                f"{what}: the portal rejected " + "; ".join(f"{k}: {v}" for k, v in mapped.items()),
                reason=ReasonCode.PORTAL_VALIDATION,
                field_errors=mapped,
            )

    @staticmethod
    def _keys_by_label(sel: SelectorSet) -> dict[str, str]:
        out = {}
        for step in [*sel.steps, sel.search]:
            for key, spec in step.fields.items():
                if spec.label:
                    out[spec.label] = f"payload.{key}" if key not in ("vin", "case_id") else key
        return out

    # ------------------------------------------------------------------ steps
    async def is_logged_in(self, page: Page, sel: SelectorSet) -> bool:
        return await sel.logged_in.locate(page).count() > 0

    async def ensure_logged_in(
        self, page: Page, base_url: str, creds: DealerCredentials, secret_section: SecretSection
    ) -> None:
        # Any page works: a portal redirects to its login when the session is gone. The search
        # page is where every job goes next, so a live session costs no extra page load.
        first = next(iter(self.selector_sets.values()))
        await self.goto(page, base_url + first.paths["search"], "open portal")
        sel = await self.selectors(page)
        if await self.is_logged_in(page, sel):
            self._fresh_search[page] = True
            return
        if self._path(page) != sel.paths["login"]:
            await self.goto(page, base_url + sel.paths["login"], "open login")
        values = {
            "username": creds.username,
            "password": creds.password.get_secret_value(),
            "dealer_id": creds.dealer_id,
        }
        async with secret_section():
            for key, spec in sel.login.fields.items():
                value = values[key]
                await self.act(page, spec, f"login field {key}", lambda el, v=value: el.fill(v))
            await self.click_and_wait(page, sel.login.submit, "login")
        if await sel.login.error.locate(page).count():
            raise AuthFailure(
                f"{self.oem} rejected the login of dealer {creds.dealer_id}",
                reason=ReasonCode.LOGIN_REJECTED,
            )
        if sel.totp is not None and self._path(page) == sel.totp.path:
            if creds.totp_secret is None:
                raise AuthFailure(
                    f"{self.oem} asks for a code; no TOTP secret configured",
                    reason=ReasonCode.MFA_REJECTED,
                )
            code = pyotp.TOTP(creds.totp_secret.get_secret_value()).now()
            async with secret_section(code):
                await self.act(
                    page, sel.totp.field, "authentication code", lambda el: el.fill(code)
                )
                await self.click_and_wait(page, sel.totp.submit, "verify code")
            if await sel.totp.error.locate(page).count():
                raise AuthFailure(
                    f"{self.oem} rejected the authentication code", reason=ReasonCode.MFA_REJECTED
                )
        if not await self.is_logged_in(page, sel):
            raise AdapterBug(
                f"{self.oem}: no signed-in marker after login ({sel.logged_in})",
                reason=ReasonCode.SELECTOR_NOT_FOUND,
            )

    async def _assert_session(self, page: Page, sel: SelectorSet, what: str) -> None:
        if self._path(page) == sel.paths["login"]:
            raise SiteFlake(
                f"{what}: the portal session expired", reason=ReasonCode.SITE_SESSION_EXPIRED
            )

    async def search(self, page: Page, base_url: str, case: Case) -> None:
        sel = await self.selectors(page)
        # A live session left the page on an untouched search form (`ensure_logged_in`).
        fresh = self._fresh_search.pop(page, False) and self._path(page) == sel.paths["search"]
        if not fresh:
            await self.goto(page, base_url + sel.paths["search"], "open search")
        await self._assert_session(page, sel, "search")
        await self.fill_fields(page, sel.search.fields, case, "search")
        await self.click_and_wait(
            page, sel.search.submit, "vehicle search", timeout_ms=self.search_timeout_ms
        )
        await self._assert_session(page, sel, "search")
        if await sel.search.not_found.locate(page).count():
            text = (await sel.search.not_found.locate(page).first.inner_text()).strip()
            raise InvalidData(text, reason=ReasonCode.PORTAL_VALIDATION, field_errors={"vin": text})
        await self.raise_on_validation(page, sel, "search")
        await self.click_and_wait(page, sel.search.start, "start submission")

    async def fill(self, page: Page, case: Case) -> None:
        sel = await self.selectors(page)
        for n, step in enumerate(sel.steps, start=1):
            await self._assert_session(page, sel, f"form step {n}")
            await self.fill_fields(page, step.fields, case, f"form step {n}")
            await self.click_and_wait(page, step.next, f"form step {n}")
            await self.raise_on_validation(page, sel, f"form step {n}")
        await self._assert_session(page, sel, "review")
        await self.require(page, sel.review.submit, "review page")

    async def submit(self, page: Page) -> None:
        sel = await self.selectors(page)
        await self.act(page, sel.review.attestation, "attestation", lambda el: el.check())
        await self.click_and_wait(page, sel.review.submit, "submit")

    async def read_reference(self, page: Page) -> str:
        sel = await self.selectors(page)
        await self.raise_on_validation(page, sel, "submit")
        text = (
            await self.act(
                page, sel.confirmation_reference, "confirmation reference", Locator.inner_text
            )
        ).strip()
        reference = sel.parse_reference(text)
        if reference is None:
            raise AdapterBug(
                f"reference {text!r} does not match {self.oem} {sel.ui_version} format "
                f"{sel.reference_regex!r}",
                reason=ReasonCode.REFERENCE_UNPARSED,
            )
        return reference

    async def lookup(self, page: Page, base_url: str, case: Case) -> LookupResult | None:
        sel = await self.selectors(page)
        await self.goto(page, base_url + sel.paths["lookup"], "open lookup")
        await self._assert_session(page, sel, "lookup")
        await self.act(page, sel.lookup.query, "lookup query", lambda el: el.fill(case.case_id))
        await self.click_and_wait(page, sel.lookup.submit, "lookup")
        if await sel.lookup.empty.locate(page).count():
            return None  # the portal says, in so many words, that it has nothing
        # Anything short of that explicit "nothing" must never lead to a blind resubmit: a
        # result we cannot read is an adapter bug, and the job waits for an engineer.
        results = await self.require(page, sel.lookup.results, "lookup results")
        row = sel.lookup.row.locate(results).filter(has_text=case.case_id)
        if await row.count() == 0:
            raise AdapterBug(
                f"lookup for {case.case_id} shows results but no row for it ({sel.lookup.row})",
                reason=ReasonCode.SELECTOR_NOT_FOUND,
            )
        text = await row.first.inner_text()
        reference = sel.find_reference(text)
        if reference is None:
            raise AdapterBug(
                f"lookup row for {case.case_id} carries no {sel.reference_regex}",
                reason=ReasonCode.REFERENCE_UNPARSED,
            )
        return LookupResult(reference=reference, details={"row": " ".join(text.split())})
