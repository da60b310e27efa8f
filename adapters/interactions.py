"""How a selector-driven adapter touches a page: versions, clicks, dialogs, fields, errors.

The templated steps (`adapters.base`) are written in these terms, so that what differs between
portals (a form in an iframe, a confirm() on submit, a select box, an app that submits by
fetch) is data in the selector file, not a step override.
"""

from __future__ import annotations

import contextlib
import re
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlparse

from playwright.async_api import Dialog, Frame, Locator, Page, Response
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from adapters.selectors import (
    ActionSpec,
    AfterClick,
    FieldSpec,
    LocatorSpec,
    SelectorSet,
    load_selector_sets,
)
from submissions_pipeline.domain import Case, ReasonCode
from submissions_pipeline.domain.oem import OemSettings
from submissions_pipeline.runner.adapter import PortalAdapter
from submissions_pipeline.runner.errors import (
    AdapterBug,
    HumanRequired,
    InvalidData,
    SelectorMissing,
    SiteFlake,
)

#: The <meta> a portal page may carry with its UI version (a `fingerprint.meta`).
VERSION_META = 'meta[name="portal-ui-version"]'
#: Reads the version meta in one round trip (a locator count plus an attribute read is two).
_VERSION_JS = "(sel) => document.querySelector(sel)?.getAttribute('content') ?? null"
_TRUE = {"true", "yes", "1", "on", "y"}

T = TypeVar("T")

#: The CAPTCHA widgets of the common vendors (reCAPTCHA, hCaptcha, Cloudflare Turnstile) and
#: any frame that calls itself a CAPTCHA: a page showing one waits for a person.
CAPTCHA_CSS = (
    "iframe[src*='recaptcha'], iframe[src*='hcaptcha'], iframe[src*='challenges.cloudflare'], "
    "iframe[title*='captcha' i], .g-recaptcha, .h-captcha, .cf-turnstile, [data-sitekey]"
)


class SelectorDrivenAdapter(PortalAdapter):
    """The page plumbing of an adapter driven by versioned selector files."""

    #: How long a click's navigation or response may take. Long on purpose: a slow portal is
    #: not a broken adapter, and the step's hard budget (runner) is the real guard.
    navigation_timeout_ms: ClassVar[float] = 60_000

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
        # Version found by probing, per page and URL: probes cost a round trip each.
        self._probed: weakref.WeakKeyDictionary[Page, tuple[str, str]] = weakref.WeakKeyDictionary()
        # The portal's host per page (from the first navigation): a sign-in form on another
        # host is a single sign-on prompt.
        self._home: weakref.WeakKeyDictionary[Page, str] = weakref.WeakKeyDictionary()

    # ------------------------------------------------------------------ versions
    async def detect_version(self, page: Page) -> str:
        """The UI version the page shows, by the versions' fingerprints (a meta tag, a URL, an
        element), else the version without one; a page matching none is not a portal page."""
        sets = self.selector_sets
        uses_meta = any(s.fingerprint and s.fingerprint.meta for s in sets.values())
        meta = await self._read_meta(page) if uses_meta else None
        probed = self._probed.get(page)
        if probed is not None and probed[0] == page.url and meta is None:
            return probed[1]
        fallback = None
        for version, sel in sets.items():
            fp = sel.fingerprint
            if fp is None:
                fallback = version
                continue
            if fp.meta is not None and fp.meta != meta:
                continue
            if fp.url is not None and not re.search(fp.url, page.url):
                continue
            if fp.locator is not None and await fp.locator.locate(page).count() == 0:
                continue
            if fp.locator is not None or fp.url is not None:
                self._probed[page] = (page.url, version)
            return version
        if fallback is not None:
            return fallback
        if meta is not None:
            raise AdapterBug(
                f"{self.oem} portal shows UI version {meta!r}; known: {sorted(sets)}",
                reason=ReasonCode.UNKNOWN_UI_VERSION,
            )
        # Not a portal page at all (a CDN check, a maintenance page): the site, not us.
        self._check_status(page, "detect UI version")
        probes = "; ".join(f"{v}: {s.fingerprint}" for v, s in sets.items())
        raise SiteFlake(
            f"{self.oem}: the page at {page.url} is not a portal page (no version fingerprint "
            f"matched: {probes})",
            reason=ReasonCode.SITE_PAGE_LOST,
        )

    @staticmethod
    async def _read_meta(page: Page) -> str | None:
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
        if len(self.selector_sets) == 1:
            only = next(iter(self.selector_sets.values()))
            if only.fingerprint is None:
                return only  # one version and nothing to check: no round trip
        return self.selector_sets[await self.detect_version(page)]

    # ------------------------------------------------------------------ status
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
        self._home.setdefault(page, urlparse(url).hostname or "")
        self._record_status(page, await page.goto(url, wait_until="domcontentloaded"))
        self._check_status(page, what)

    def _path(self, page: Page) -> str:
        return urlparse(page.url).path

    # ------------------------------------------------------------------ elements
    async def act(
        self, page: Page, spec: LocatorSpec, what: str, action: Callable[[Locator], Awaitable[T]]
    ) -> T:
        """Do `action` on the element, relying on Playwright's auto-wait; diagnose only on failure.

        Asking whether an element exists before every action doubles the round trips of a job;
        so the action goes first and a timeout is examined afterwards: no such element on a
        portal page is a changed UI (an adapter bug), a page that is not the portal at all (no
        fingerprint matches, a 5xx) is the site's fault, anything else stays a timeout.
        """
        loc = spec.locate(page)
        try:
            return await action(loc.first)
        except PlaywrightTimeoutError:
            if await loc.count() == 0:
                await self.raise_if_a_person_is_needed(page, what)
                version = await self.detect_version(page)  # raises for a 5xx or a non-portal page
                owners = [s for s in self.selector_sets.values() if s.path_of(spec) is not None]
                sel = owners[0] if owners else self.selector_sets[version]
                raise SelectorMissing(
                    f"{what} not found ({spec})",
                    what=what,
                    locator=spec.where(),
                    selector_file=sel.source,
                    selector_path=sel.path_of(spec),
                ) from None
            raise

    async def raise_if_a_person_is_needed(self, page: Page, what: str) -> None:
        """HumanRequired when the page in front of the job is one only a person can answer: a
        CAPTCHA, this portal's own `human_required` elements, a password prompt on another
        host (single sign-on), or a window the portal opened. Asked only once an element is
        missing, so it costs nothing on the happy path."""
        found = await self._needs_a_person(page)
        if found is not None:
            raise HumanRequired(
                f"{what}: the portal shows {found}; a person must take it from here"
            )

    async def _needs_a_person(self, page: Page) -> str | None:
        if await page.locator(CAPTCHA_CSS).count():
            return "a CAPTCHA"
        for sel in self.selector_sets.values():
            for spec in sel.human_required:
                if await spec.locate(page).count():
                    return f"a page that needs a person ({spec.where()})"
        home = self._home.get(page)
        host = urlparse(page.url).hostname
        if home and host and host != home and await page.locator("input[type=password]").count():
            return f"a sign-in page on {host} (single sign-on)"
        for other in page.context.pages:
            if other is not page and not other.is_closed() and await other.opener() is page:
                return f"a window it opened ({urlparse(other.url).hostname or other.url})"
        return None

    async def require(self, page: Page, spec: LocatorSpec, what: str) -> Locator:
        """The element once it is on the page, or an adapter bug (see `act`)."""
        loc = spec.locate(page).first
        await self.act(page, spec, what, lambda el: el.wait_for(state="attached"))
        return loc

    async def first_of(self, page: Page, specs: list[LocatorSpec | None]) -> None:
        """Wait until any of the elements is on the page (a result or its error message), so
        that what a single-page app renders after a response is read only once it is there."""
        locs = [s.locate(page) for s in specs if s is not None]
        if len(locs) < 2:
            return
        union = locs[0]
        for loc in locs[1:]:
            union = union.or_(loc)
        with contextlib.suppress(PlaywrightTimeoutError):
            await union.first.wait_for(state="attached")

    # ------------------------------------------------------------------ clicks
    async def click(
        self, page: Page, spec: ActionSpec, what: str, timeout_ms: float | None = None
    ) -> None:
        """Click a button and wait for what it starts (see `AfterClick`), answering any
        JavaScript dialog as the spec says.

        Once the click is dispatched, a slow answer is the site's problem, never a missing
        element: the wait has its own (long) timeout and ends as a site flake.
        """
        after = spec.after or AfterClick(navigation=True)
        limit = timeout_ms or self.navigation_timeout_ms
        async with self._answer_dialogs(page, spec):
            try:
                if after.response is not None:
                    pattern = re.compile(after.response)
                    async with page.expect_response(
                        lambda r: bool(pattern.search(r.url)), timeout=limit
                    ) as resp:
                        await self._dispatch(page, spec, what)
                    response = await resp.value
                    if response.status >= 500:
                        raise SiteFlake(
                            f"{what}: portal answered HTTP {response.status}",
                            reason=ReasonCode.SITE_HTTP_5XX,
                        )
                elif after.locator is not None:
                    await self._dispatch(page, spec, what)
                    await after.locator.locate(page).first.wait_for(timeout=limit)
                elif after.nothing:
                    await self._dispatch(page, spec, what)
                else:
                    target = await self._frame_of(page, spec.frame) if spec.frame else page
                    async with target.expect_navigation(
                        wait_until="domcontentloaded", timeout=limit
                    ) as nav:
                        await self._dispatch(page, spec, what)
                    self._record_status(page, await nav.value)
                    self._check_status(page, what)
            except PlaywrightTimeoutError as exc:
                raise SiteFlake(
                    f"{what}: clicked, but the portal did not answer within {limit / 1000:g} s",
                    reason=ReasonCode.SITE_TIMEOUT,
                ) from exc

    async def _dispatch(self, page: Page, spec: ActionSpec, what: str) -> None:
        # `no_wait_after`: the caller waits for the click's effect under its own timeout; a click
        # that waited for a slow navigation itself would time out as if the button were missing.
        await self.act(page, spec, what, lambda el: el.click(no_wait_after=True))

    @staticmethod
    async def _frame_of(page: Page, css: str) -> Frame:
        handle = await page.locator(css).first.element_handle()
        frame = await handle.content_frame()
        if frame is None:
            raise AdapterBug(f"{css!r} is not a frame", reason=ReasonCode.SELECTOR_NOT_FOUND)
        return frame

    @staticmethod
    @contextlib.asynccontextmanager
    async def _answer_dialogs(page: Page, spec: ActionSpec) -> AsyncIterator[None]:
        """Answer alert/confirm/prompt dialogs the click opens as the spec says (Playwright's
        default dismisses them, which cancels a confirm()-guarded submit)."""
        if spec.dialog is None and spec.prompt is None:
            yield
            return

        async def answer(dialog: Dialog) -> None:
            if spec.dialog == "dismiss":
                await dialog.dismiss()
            elif spec.prompt is not None and dialog.type == "prompt":
                await dialog.accept(spec.prompt)
            else:
                await dialog.accept()

        page.on("dialog", answer)
        try:
            yield
        finally:
            page.remove_listener("dialog", answer)

    # ------------------------------------------------------------------ values
    def case_value(self, source: str, case: Case) -> Any:
        """The case's value for a selector file's source name (`vin`, `mileage`,
        `payload.extra.category`...)."""
        if source in ("case_id", "vin", "dealer_id"):
            return getattr(case, source)
        name = source.removeprefix("payload.")
        if name.startswith("extra."):
            key = name.removeprefix("extra.")
            if key not in case.payload.extra:
                raise InvalidData(
                    f"the {self.oem} portal needs payload.extra.{key}, which the case lacks",
                    reason=ReasonCode.CASE_INVALID,
                    field_errors={f"payload.extra.{key}": "is required by this OEM's portal"},
                )
            return case.payload.extra[key]
        if name in type(case.payload).model_fields and name != "extra":
            return getattr(case.payload, name)
        raise AdapterBug(f"selector file binds unknown field {source!r}")

    def value_for(self, key: str, case: Case) -> str:
        """The text to type into a field bound to the case field `key`."""
        value = self.case_value(key, case)
        if isinstance(value, float):
            return f"{value:g}"
        if isinstance(value, date):
            return value.isoformat()
        return str(value)

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
        self, page: Page, fields: dict[str, FieldSpec], case: Case, what: str
    ) -> None:
        for key, spec in fields.items():
            await self.fill_field(page, key, spec, case, f"{what}: field {key}")

    async def fill_field(
        self, page: Page, key: str, spec: FieldSpec, case: Case, label: str
    ) -> None:
        """Put the case's value into one field, the way its type wants it."""
        source = spec.source or key
        if spec.type == "file" or source == "document":
            doc = self.document_for(case)
            await self.act(page, spec, label, lambda el: el.set_input_files(doc))
            return
        value = self.case_value(source, case)
        if spec.type == "checkbox":
            checked = value if isinstance(value, bool) else str(value).lower() in _TRUE
            await self.act(page, spec, label, lambda el: el.set_checked(checked))
            return
        if spec.type == "date" and isinstance(value, date):
            text = value.strftime(spec.date_format)
        else:
            text = self.value_for(source, case)
        option = spec.values.get(text, text)
        try:
            if spec.type == "select":
                pick = {spec.select_by: option}
                await self.act(page, spec, label, lambda el: el.select_option(**pick))
            elif spec.type == "radio":
                await self.act(
                    page,
                    spec,
                    label,
                    lambda el: el.get_by_label(option, exact=True).check(),
                )
            else:
                await self.act(page, spec, label, lambda el: el.fill(text))
        except PlaywrightTimeoutError:
            if spec.type not in ("select", "radio"):
                raise
            # The field is there (act found it) but offers no such option: the case's value.
            field = self.field_key(key, spec)
            raise InvalidData(
                f"{label}: the portal offers no option {option!r}",
                reason=ReasonCode.PORTAL_VALIDATION,
                field_errors={field: f"the portal offers no option {option!r}"},
            ) from None

    @staticmethod
    def field_key(key: str, spec: FieldSpec) -> str:
        """The CRM's name of the field a portal field is filled from (for field errors)."""
        source = spec.source or key
        if source in ("vin", "case_id", "dealer_id") or source.startswith("payload."):
            return source
        return f"payload.{source}"

    # ------------------------------------------------------------------ errors
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
        """Invalid data when the portal shows field errors or its page-level error summary."""
        summary = sel.errors.summary
        # One round trip on the happy path: anything invalid, or a summary at all? Only then are
        # the messages read one by one. A summary inside a frame cannot join that union, so with
        # one the messages are always read.
        if summary is None or summary.frame is None:
            anything = page.locator('[aria-invalid="true"]')
            if summary is not None:
                anything = anything.or_(summary.locate(page))
            if not await anything.count():
                return
        keys = self._keys_by_label(sel)
        found = await self.field_errors(page)
        errors = {keys.get(label, label): msg for label, msg in found.items()}
        if summary is not None and await summary.locate(page).count():
            text = " ".join((await summary.locate(page).first.inner_text()).split())
            named = {key: text for label, key in keys.items() if label.lower() in text.lower()}
            errors.update(named or {"portal": text})
        if errors:
            raise InvalidData(
                f"{what}: the portal rejected " + "; ".join(f"{k}: {v}" for k, v in errors.items()),
                reason=ReasonCode.PORTAL_VALIDATION,
                field_errors=errors,
            )

    def _keys_by_label(self, sel: SelectorSet) -> dict[str, str]:
        out = {}
        steps = [*sel.steps, *([sel.search] if sel.search else [])]
        for step in steps:
            for key, spec in step.fields.items():
                if spec.label:
                    out[spec.label] = self.field_key(key, spec)
        return out
