"""Request handlers of the claim wizard: form steps, review, submit and the confirmation page."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sandbox.flow import PortalFlow
from sandbox.ledger import LedgerEntry
from sandbox.pages import GATEWAY_TIMEOUT_PAGE
from sandbox.state import Draft, Session, StepSpec
from sandbox.validation import MESSAGES, PAYLOAD_KEYS, validate_field


class ClaimFlow(PortalFlow):
    """The wizard under ``<claim path>/<draft id>/<step>``: steps in order, review, submit."""

    async def claim_step(self, request: Request) -> Response:
        session, redirect = self.authenticated(request)
        if redirect:
            return redirect
        draft = self.draft(request.path_params["draft_id"], session.dealer_id)
        slug = request.path_params["step"]
        slugs = [s.slug for s in self.steps]
        if draft is None or slug not in [*slugs, self.review_slug]:
            return self.render(
                request,
                "pages/notfound.html",
                self.t(request, "notfound.title"),
                session=session,
                status_code=404,
            )
        # A step is reachable only when every earlier step was completed.
        for earlier in self.steps:
            if earlier.slug == slug:
                break
            if earlier.slug not in draft.steps_done:
                return RedirectResponse(self.step_url(draft, earlier.slug), status_code=303)
        if slug == self.review_slug:
            return await self.review(request, session, draft)
        step = self.steps[slugs.index(slug)]
        if request.method == "GET":
            return self.step_page(request, session, draft, step, {})
        form = await request.form()
        errors: dict[str, str] = {}
        for spec in step.fields:
            if spec.kind == "file":
                error = await self._take_document(draft, form.get(spec.name))
                if error:
                    errors[spec.key] = error
                continue
            raw = form.get(spec.name, "")
            raw = raw if isinstance(raw, str) else ""
            draft.raw[spec.key] = raw
            value, error = validate_field(spec.key, raw, self.today())
            if error:
                errors[spec.key] = error
            elif spec.key == "case_id":
                draft.case_id = value
            else:
                draft.values[spec.key] = value
        if errors:
            draft.steps_done.discard(step.slug)
            return self.step_page(request, session, draft, step, errors)
        draft.steps_done.add(step.slug)
        index = slugs.index(slug)
        following = slugs[index + 1] if index + 1 < len(slugs) else self.review_slug
        return RedirectResponse(self.step_url(draft, following), status_code=303)

    async def _take_document(self, draft: Draft, upload: Any) -> str | None:
        if isinstance(upload, UploadFile) and upload.filename:
            data = await upload.read()
            if data:
                draft.document = {
                    "filename": upload.filename,
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "content_type": upload.content_type or "application/octet-stream",
                }
                return None
            return MESSAGES["document"]
        # No new file: fine if one was attached earlier (the dealer came back to this step).
        return None if draft.document else MESSAGES["document"]

    def step_page(
        self,
        request: Request,
        session: Session,
        draft: Draft,
        step: StepSpec,
        errors: Mapping[str, str],
    ) -> HTMLResponse:
        version_index = 0 if self.version(request) == "v1" else 1
        fields = [
            self.field_view(
                request,
                spec,
                draft.case_id if spec.key == "case_id" else draft.raw.get(spec.key, ""),
                errors.get(spec.key),
            )
            for spec in step.fields
        ]
        has_upload = any(spec.kind == "file" for spec in step.fields)
        slugs = [s.slug for s in self.steps]
        index = slugs.index(step.slug)
        title = step.title[version_index]
        return self.render(
            request,
            "pages/step.html",
            title,
            session=session,
            draft=draft,
            step_index=index,
            step_count=len(self.steps),
            action=self.step_url(draft, step.slug),
            fields=fields,
            error_count=len(errors),
            hidden=self._hidden_case_id(draft),
            multipart=has_upload,
            back=self.step_url(draft, slugs[index - 1]) if index else None,
            attached=draft.document if has_upload else None,
        )

    def _hidden_case_id(self, draft: Draft) -> dict[str, str]:
        return {"case_id": draft.case_id} if self.case_id_hidden() else {}

    # ----------------------------------------------------------------- review

    def review_rows(self, request: Request, draft: Draft) -> list[tuple[str, str]]:
        version_index = 0 if self.version(request) == "v1" else 1
        rows = [("VIN", draft.vin)]
        case_label = self.t(request, "review.case_label")
        rows.append((case_label, draft.case_id))
        for step in self.steps:
            for spec in step.fields:
                if spec.key == "case_id":
                    continue
                if spec.kind == "file":
                    doc = draft.document or {}
                    rows.append((spec.label[version_index], doc.get("filename", "")))
                else:
                    rows.append((spec.label[version_index], draft.raw.get(spec.key, "")))
        return rows

    async def review(self, request: Request, session: Session, draft: Draft) -> Response:
        error = None
        if request.method == "POST":
            form = await request.form()
            if form.get("attest") in ("on", "yes", "1", "true"):
                return self.submit(request, session, draft)
            error = MESSAGES["attestation"]
        return self.review_page(request, session, draft, error)

    def review_page(
        self, request: Request, session: Session, draft: Draft, error: str | None
    ) -> HTMLResponse:
        return self.render(
            request,
            "pages/review.html",
            self.t(request, "review.title"),
            session=session,
            draft=draft,
            step_index=len(self.steps),
            step_count=len(self.steps),
            rows=self.review_rows(request, draft),
            action=self.step_url(draft, self.review_slug),
            attest_id=self.input_id("attest", self.version(request)),
            error=error,
            hidden=self._hidden_case_id(draft),
            back=self.step_url(draft, self.steps[-1].slug),
        )

    # ----------------------------------------------------------------- submit

    def submit(self, request: Request, session: Session, draft: Draft) -> Response:
        """Record the submission, then either confirm it or (fault) drop the response with a 504."""
        cfg = self.config_for(request)
        reference = self.next_reference(cfg, draft.case_id)
        dropped = self.dice.happens(
            cfg.seed, "drop_after_submit", draft.case_id, cfg.drop_after_submit_rate
        )
        payload: dict[str, Any] = {key: draft.values.get(key) for key in PAYLOAD_KEYS}
        if draft.document:
            payload["document"] = dict(draft.document)
        self.ledger.record(
            LedgerEntry(
                oem=self.key,
                case_id=draft.case_id,
                vin=draft.vin,
                dealer_id=session.dealer_id,
                reference=reference,
                received_at=self.clock(),
                payload=payload,
                ui_version=cfg.ui_version,
                response_dropped=dropped,
            )
        )
        if dropped:
            return HTMLResponse(GATEWAY_TIMEOUT_PAGE, status_code=504)
        return self.render(
            request,
            "pages/confirmation.html",
            self.t(request, "confirm.title"),
            session=session,
            draft=draft,
            reference=reference,
        )
