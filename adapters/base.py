"""The templated steps every OEM adapter shares, driven by that OEM's versioned selector files.

A new OEM is a selector file per UI version plus a subclass naming its key; what differs between
portals (sections a portal lacks, frames, dialogs, field types, where the reference is, how the
lookup searches) is data in the selector file, and only a portal that really behaves differently
overrides a step.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ClassVar

import pyotp
from playwright.async_api import Locator, Page
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from adapters.interactions import VERSION_META, SelectorDrivenAdapter
from adapters.selectors import SelectorSet
from submissions_pipeline.credentials import DealerCredentials
from submissions_pipeline.domain import Case, ReasonCode
from submissions_pipeline.domain.oem import OemSettings
from submissions_pipeline.runner.adapter import LookupResult, SecretSection
from submissions_pipeline.runner.errors import (
    AbsenceUnproven,
    AdapterBug,
    AuthFailure,
    InvalidData,
    SiteFlake,
)

__all__ = ["VERSION_META", "TemplatedPortalAdapter"]


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


class TemplatedPortalAdapter(SelectorDrivenAdapter):
    """Log in → search → form steps → review → submit → confirmation, from selector files."""

    #: Navigation timeout of the slow search step (the step's hard budget is the outer guard).
    search_timeout_ms: ClassVar[float] = 35_000

    def __init__(
        self,
        settings: OemSettings,
        folder: Path,
        selector_sets: dict[str, SelectorSet] | None = None,
    ):
        super().__init__(settings, folder, selector_sets)
        # Pages showing a start page (search or form) nobody has typed into yet.
        self._fresh_start: weakref.WeakKeyDictionary[Page, bool] = weakref.WeakKeyDictionary()

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

    # ------------------------------------------------------------------ login
    async def is_logged_in(self, page: Page, sel: SelectorSet) -> bool:
        """Whether the page shows the signed-in marker. An app that renders after load gets
        until the marker or the login button appears (whichever comes first) to show it."""
        marker = sel.logged_in.locate(page)
        if await marker.count():
            return True
        with contextlib.suppress(PlaywrightTimeoutError):
            either = marker.or_(sel.login.submit.locate(page)).first
            await either.wait_for(state="attached")
        return await marker.count() > 0

    async def ensure_logged_in(
        self, page: Page, base_url: str, creds: DealerCredentials, secret_section: SecretSection
    ) -> None:
        # Any page works: a portal redirects to its login when the session is gone. The start
        # page is where every job goes next, so a live session costs no extra page load.
        first = next(iter(self.selector_sets.values()))
        await self.goto(page, base_url + first.start_path, "open portal")
        sel = await self.selectors(page)
        if await self.is_logged_in(page, sel):
            self._fresh_start[page] = True
            return
        if self._path(page) != sel.paths.login:
            await self.goto(page, base_url + sel.paths.login, "open login")
        values = {
            "username": creds.username,
            "password": creds.password.get_secret_value(),
            "dealer_id": creds.dealer_id,
        }
        async with secret_section():
            for key, spec in sel.login.fields.items():
                value = values[key]
                await self.act(page, spec, f"login field {key}", lambda el, v=value: el.fill(v))
            await self.click(page, sel.login.submit, "login")
        if sel.login.error is not None and await sel.login.error.locate(page).count():
            raise AuthFailure(
                f"{self.oem} rejected the login of dealer {creds.dealer_id}",
                reason=ReasonCode.LOGIN_REJECTED,
            )
        if sel.totp is not None and self._path(page) == sel.totp.path:
            await self._answer_totp(page, sel, creds, secret_section)
        if not await self.is_logged_in(page, sel):
            if sel.login.error is None and self._path(page) == sel.paths.login:
                raise AuthFailure(
                    f"{self.oem} kept dealer {creds.dealer_id} on the login page",
                    reason=ReasonCode.LOGIN_REJECTED,
                )
            await self.raise_if_a_person_is_needed(page, "login")
            # A 5xx or a page that is not the portal at all is the site's fault, not ours.
            await self.detect_version(page)
            raise AdapterBug(
                f"{self.oem}: no signed-in marker after login ({sel.logged_in})",
                reason=ReasonCode.SELECTOR_NOT_FOUND,
            )

    async def _answer_totp(
        self, page: Page, sel: SelectorSet, creds: DealerCredentials, secret_section: SecretSection
    ) -> None:
        assert sel.totp is not None
        if creds.totp_secret is None:
            raise AuthFailure(
                f"{self.oem} asks for a code; no TOTP secret configured",
                reason=ReasonCode.MFA_REJECTED,
            )
        code = pyotp.TOTP(creds.totp_secret.get_secret_value()).now()
        async with secret_section(code):
            await self.act(page, sel.totp.field, "authentication code", lambda el: el.fill(code))
            await self.click(page, sel.totp.submit, "verify code")
        if await sel.totp.error.locate(page).count():
            raise AuthFailure(
                f"{self.oem} rejected the authentication code", reason=ReasonCode.MFA_REJECTED
            )

    async def _assert_session(self, page: Page, sel: SelectorSet, what: str) -> None:
        if self._path(page) == sel.paths.login:
            raise SiteFlake(
                f"{what}: the portal session expired", reason=ReasonCode.SITE_SESSION_EXPIRED
            )

    # ------------------------------------------------------------------ submission
    async def search(self, page: Page, base_url: str, case: Case) -> None:
        sel = await self.selectors(page)
        # A live session left the page on an untouched start page (`ensure_logged_in`).
        fresh = self._fresh_start.pop(page, False) and self._path(page) == sel.start_path
        if not fresh:
            await self.goto(page, base_url + sel.start_path, "open start page")
        await self._assert_session(page, sel, "search")
        if sel.search is None:
            return  # the form is the start page: no vehicle search
        search = sel.search
        await self.fill_fields(page, search.fields, case, "search")
        await self.click(page, search.submit, "vehicle search", timeout_ms=self.search_timeout_ms)
        await self._assert_session(page, sel, "search")
        if search.not_found is not None and await search.not_found.locate(page).count():
            text = (await search.not_found.locate(page).first.inner_text()).strip()
            raise InvalidData(text, reason=ReasonCode.PORTAL_VALIDATION, field_errors={"vin": text})
        await self.raise_on_validation(page, sel, "search")
        if search.start is not None:
            await self.click(page, search.start, "start submission")

    async def fill(self, page: Page, case: Case) -> None:
        sel = await self.selectors(page)
        for n, step in enumerate(sel.steps, start=1):
            await self._assert_session(page, sel, f"form step {n}")
            await self.fill_fields(page, step.fields, case, f"form step {n}")
            if step.next is not None:
                await self.click(page, step.next, f"form step {n}")
                await self.raise_on_validation(page, sel, f"form step {n}")
        await self._assert_session(page, sel, "review")
        await self.require(page, sel.review.submit, "review page")

    async def submit(self, page: Page) -> None:
        sel = await self.selectors(page)
        if sel.review.attestation is not None:
            await self.act(page, sel.review.attestation, "attestation", lambda el: el.check())
        await self.click(page, sel.review.submit, "submit")

    async def read_reference(self, page: Page) -> str:
        sel = await self.selectors(page)
        ref = sel.confirmation_reference
        # A page rendered by script shows the reference or the errors a moment after load.
        await self.first_of(page, [ref.locator, sel.errors.summary])
        await self.raise_on_validation(page, sel, "submit")
        if ref.url:
            with contextlib.suppress(PlaywrightTimeoutError):
                await page.wait_for_url(lambda u: sel.find_reference(u) is not None)
            text, reference = page.url, sel.find_reference(page.url)
        else:
            assert ref.locator is not None
            if ref.attribute is not None:
                name = ref.attribute
                raw = await self.act(
                    page, ref.locator, "confirmation reference", lambda el: el.get_attribute(name)
                )
                text = raw or ""
                reference = sel.find_reference(text)
            else:
                text = await self.act(
                    page, ref.locator, "confirmation reference", Locator.inner_text
                )
                find = sel.find_reference if ref.within else sel.parse_reference
                reference = find(text)
        if reference is None:
            raise AdapterBug(
                f"reference {text.strip()!r} does not match {self.oem} {sel.ui_version} format "
                f"{sel.reference_regex!r}",
                reason=ReasonCode.REFERENCE_UNPARSED,
            )
        return reference

    # ------------------------------------------------------------------ reconciliation
    async def lookup(
        self, page: Page, base_url: str, case: Case, reference: str | None = None
    ) -> LookupResult | None:
        sel = await self.selectors(page)
        if sel.lookup is None or sel.paths.lookup is None:
            raise AbsenceUnproven(
                f"{self.oem}: the selector file declares no lookup, so whether the portal holds "
                f"{case.case_id} cannot be checked; a person must look",
                step="reconcile",
            )
        lookup = sel.lookup
        shown = lookup.match or [lookup.by]
        if "reference" in shown and reference is None:
            # Only the portal's reference finds the case, and none was ever read for it.
            raise AbsenceUnproven(
                f"{self.oem} is searched by its own reference and none was read for "
                f"{case.case_id}; a person must look",
                step="reconcile",
            )

        def text_of(source: str) -> str:
            return (
                reference if source == "reference" and reference else self.value_for(source, case)
            )

        await self.goto(page, base_url + sel.paths.lookup, "open lookup")
        await self._assert_session(page, sel, "lookup")
        query = text_of(lookup.by)
        await self.act(page, lookup.query, "lookup query", lambda el: el.fill(query))
        await self.click(page, lookup.submit, "lookup")
        await self.first_of(page, [lookup.results, lookup.empty])
        if await lookup.empty.locate(page).count():
            return None  # the portal says, in so many words, that it has nothing
        # Anything short of that explicit "nothing" must never lead to a blind resubmit: a
        # result we cannot read is an adapter bug, and the job waits for an engineer.
        results = await self.require(page, lookup.results, "lookup results")
        row = lookup.row.locate(results)
        for source in shown:
            row = row.filter(has_text=text_of(source))
        count = await row.count()
        # A case id or a reference names one case; a VIN may have several claims, so its row
        # must be unique.
        if count == 0 or (count > 1 and shown not in (["case_id"], ["reference"])):
            raise AdapterBug(
                f"lookup by {lookup.by} for {case.case_id} shows results but {count} rows "
                f"showing its {', '.join(shown)} ({lookup.row})",
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
