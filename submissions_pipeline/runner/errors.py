"""Typed failures of a submission attempt, and the one place that classifies foreign exceptions."""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from submissions_pipeline.artifacts import ArtifactStoreUnavailable
from submissions_pipeline.domain import ErrorClass, ReasonCode


class SubmissionFailure(Exception):
    """An attempt failed for a known reason; the reason code decides the route."""

    reason: ReasonCode = ReasonCode.ADAPTER_ERROR

    def __init__(
        self,
        message: str,
        *,
        reason: ReasonCode | None = None,
        step: str | None = None,
        field_errors: dict[str, str] | None = None,
    ):
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.message = message
        self.step = step
        self.field_errors = field_errors or {}

    @property
    def error_class(self) -> ErrorClass:
        return self.reason.error_class


class SiteFlake(SubmissionFailure):
    """The portal misbehaved (5xx, timeout, lost page): retry later."""

    reason = ReasonCode.SITE_TIMEOUT


class InfrastructureFailure(SubmissionFailure):
    """Our side failed (browser crash, storage down): retry later."""

    reason = ReasonCode.BROWSER_CRASHED


class AdapterBug(SubmissionFailure):
    """The adapter no longer matches the portal: an engineer must look."""

    reason = ReasonCode.SELECTOR_NOT_FOUND


class SelectorMissing(AdapterBug):
    """A loaded portal page lacks an element the selector file names (the UI changed)."""

    reason = ReasonCode.SELECTOR_NOT_FOUND

    def __init__(
        self,
        message: str,
        *,
        what: str,
        locator: dict[str, str],
        selector_file: Path | None = None,
        selector_path: tuple[str | int, ...] | None = None,
        **kwargs: object,
    ):
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        #: The step's element in words ("form step 1: field mileage") and its locator spec.
        self.what = what
        self.locator = locator
        #: The selector file naming the element and where in it (for a suggested patch).
        self.selector_file = selector_file
        self.selector_path = selector_path


class HumanRequired(SubmissionFailure):
    """The portal put a page in front of the job that only a person can answer: a CAPTCHA, a
    single sign-on prompt, a window it opened. Review, not an adapter bug and not a retry."""

    reason = ReasonCode.HUMAN_REQUIRED


class InvalidData(SubmissionFailure):
    """The portal rejected the case's data: a human fixes it in the CRM."""

    reason = ReasonCode.PORTAL_VALIDATION


class AuthFailure(SubmissionFailure):
    """The portal rejected the dealer's credentials: halt this OEM's batch."""

    reason = ReasonCode.LOGIN_REJECTED


class AmbiguousSubmit(SubmissionFailure):
    """Submit was clicked but no confirmation was seen: reconcile before any retry."""

    reason = ReasonCode.SUBMIT_OUTCOME_UNKNOWN


class AbsenceUnproven(SubmissionFailure):
    """The portal's lookup does not show a case that may have been submitted, and the OEM's
    reconciliation policy does not (yet) count that as proof: look again later, or ask a person.
    Never a reason to submit again."""

    reason = ReasonCode.ABSENCE_UNPROVEN


class MissingEvidence(SubmissionFailure):
    """Submitted, but proof (reference, post-confirm screenshot) is incomplete."""

    reason = ReasonCode.EVIDENCE_MISSING


_CLOSED_MARKERS = ("has been closed", "Target closed", "crashed", "Browser closed", "disconnected")


def classify(
    exc: BaseException, *, step: str | None, awaiting_confirmation: bool
) -> SubmissionFailure:
    """Turn any exception raised during an attempt into a typed failure.

    Between the submit click and the confirmation, anything that is not already a definite
    outcome becomes an ambiguous submit: the portal may hold the submission, so only a lookup
    may decide what happens next.
    """
    if isinstance(exc, SubmissionFailure):
        failure = exc
    elif isinstance(exc, PlaywrightTimeoutError):
        failure = SiteFlake(f"timed out: {_first_line(exc)}", reason=ReasonCode.SITE_TIMEOUT)
    elif isinstance(exc, TimeoutError | asyncio.TimeoutError):
        failure = SiteFlake(
            f"step {step} exceeded its hard budget", reason=ReasonCode.STEP_BUDGET_EXCEEDED
        )
    elif isinstance(exc, PlaywrightError) and any(m in str(exc) for m in _CLOSED_MARKERS):
        failure = InfrastructureFailure(
            f"browser or page lost: {_first_line(exc)}", reason=ReasonCode.BROWSER_CRASHED
        )
    elif isinstance(exc, PlaywrightError):
        failure = SiteFlake(f"page error: {_first_line(exc)}", reason=ReasonCode.SITE_PAGE_LOST)
    elif isinstance(exc, ArtifactStoreUnavailable):
        failure = InfrastructureFailure(str(exc), reason=ReasonCode.STORAGE_UNAVAILABLE)
    else:
        failure = AdapterBug(
            f"{type(exc).__name__}: {_first_line(exc)}", reason=ReasonCode.ADAPTER_ERROR
        )
    if failure.step is None:
        failure.step = step
    if awaiting_confirmation and failure.error_class in (
        ErrorClass.SITE_FLAKE,
        ErrorClass.INFRASTRUCTURE,
    ):
        return AmbiguousSubmit(
            f"no confirmation after submit: {failure.message}",
            reason=ReasonCode.SUBMIT_OUTCOME_UNKNOWN,
            step=failure.step,
        )
    return failure


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
