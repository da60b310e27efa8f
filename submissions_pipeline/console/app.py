"""The ops console's web app: sign-in, tonight, jobs, a job's evidence, the review queue.

Server-rendered (Starlette + Jinja2, no front-end build). Every page but the sign-in page needs
a session; every POST needs the session's CSRF token and an operator; every action on a job is
an event on it with the operator's name. Evidence is streamed from local disk or presigned on
S3 at the moment of the click, never linked directly.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from submissions_pipeline.artifacts import ArtifactStore, LocalArtifactStore
from submissions_pipeline.console import views
from submissions_pipeline.console.auth import (
    Accounts,
    Lockout,
    Session,
    SessionSigner,
    verify_password,
)
from submissions_pipeline.console.evidence import (
    attempts_of,
    merged_trace,
    owns_key,
    repro_bundle,
)
from submissions_pipeline.crm import CrmClient
from submissions_pipeline.domain import ReasonCode
from submissions_pipeline.store import JobStore
from submissions_pipeline.store.errors import JobNotFound, StaleState

HERE = Path(__file__).parent
COOKIE = "console_session"
#: How long a presigned S3 link handed to a browser lives: just long enough to load it.
CLICK_LINK_S = 300


def trace_viewer_dir() -> Path | None:
    """Playwright's own trace viewer, shipped as static files inside the installed package."""
    spec = importlib.util.find_spec("playwright")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "driver/package/lib/vite/traceViewer"
    return folder if folder.is_dir() else None


@dataclass
class ConsoleDeps:
    """What the console reads and writes; built from the settings by `submissions console`."""

    store: JobStore
    artifacts: ArtifactStore
    accounts: Accounts
    signer: SessionSigner
    crm: CrmClient | None = None
    oems: dict[str, Any] = field(default_factory=dict)  # oem -> OemSettings
    adapters_dir: Path | None = None
    secure_cookies: bool = False
    daemon_heartbeat: Callable[[], datetime | None] | None = None
    lockout: Lockout | None = None  # default: counted in `store`
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


def create_app(deps: ConsoleDeps) -> Starlette:
    """The console as an ASGI app."""
    lockout = deps.lockout or Lockout(deps.store)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.globals.update(duration=views.duration, oem_name=lambda o: _oem_name(deps, o))
    env.filters["when"] = lambda dt: views.when(dt, deps.clock())

    def session_of(request: Request) -> Session | None:
        return deps.signer.read(request.cookies.get(COOKIE))

    def page(request: Request, name: str, session: Session, **ctx: Any) -> HTMLResponse:
        return templates.TemplateResponse(
            request,
            name,
            {
                "session": session,
                "csrf": deps.signer.csrf_token(session),
                "now": deps.clock(),
                **ctx,
            },
        )

    Handler = Callable[[Request, Session], Awaitable[Response]]

    def signed_in(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = session_of(request)
            if session is None:
                return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
            return await handler(request, session)

        return endpoint

    def session_post(
        handler: Handler, *, act: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = session_of(request)
            if session is None:
                raise HTTPException(403, "sign in first")
            form = await request.form()
            if not deps.signer.check_csrf(session, str(form.get("csrf") or "")):
                raise HTTPException(403, "missing or wrong CSRF token")
            if act and not session.can_act:
                raise HTTPException(403, "viewers cannot act on jobs")
            request.state.form = form
            return await handler(request, session)

        return endpoint

    def operator_post(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return session_post(handler, act=True)

    # ------------------------------------------------------------------ sign-in
    async def login_page(request: Request) -> Response:
        return templates.TemplateResponse(
            request, "login.html", {"error": None, "next": request.query_params.get("next", "/")}
        )

    async def login(request: Request) -> Response:
        form = await request.form()
        name, password = str(form.get("username", "")), str(form.get("password", ""))
        target = str(form.get("next") or "/")
        if not target.startswith("/") or target.startswith("//"):
            target = "/"
        error = None
        if lockout.is_locked(name):
            error = "Too many failed sign-ins: this account is locked for a while."
        else:
            account = deps.accounts.load().get(name)
            if account is None or not verify_password(password, account.password_hash):
                lockout.failed(name)
                error = "Wrong name or password."
        if error:
            return templates.TemplateResponse(
                request, "login.html", {"error": error, "next": target}, status_code=401
            )
        lockout.succeeded(name)
        cookie, _ = deps.signer.issue(account)  # type: ignore[arg-type]
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=deps.signer.ttl_s,
            httponly=True,
            samesite="lax",
            secure=deps.secure_cookies,
        )
        return response

    @session_post
    async def logout(request: Request, session: Session) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    # ------------------------------------------------------------------ pages
    @signed_in
    async def tonight(request: Request, session: Session) -> Response:
        now = deps.clock()
        rows = views.tonight(deps.store, deps.oems, now)
        beat = deps.daemon_heartbeat() if deps.daemon_heartbeat else None
        return page(request, "tonight.html", session, rows=rows, heartbeat=beat)

    @signed_in
    async def jobs_page(request: Request, session: Session) -> Response:
        f = views.JobFilter.from_query(request.query_params)
        jobs, total = views.filtered_jobs(deps.store, f)
        return page(
            request,
            "jobs.html",
            session,
            jobs=jobs,
            total=total,
            f=f,
            pages=max(1, -(-total // views.PAGE_SIZE)),
            states=[s.value for s in views.S],
            reasons=sorted(r.value for r in ReasonCode),
            error_classes=views.ERROR_CLASSES,
            oems=list(deps.oems) or sorted({j.oem for j in jobs}),
            masked_vin=views.masked_vin,
        )

    def job_or_404(job_id: str) -> Any:
        try:
            return deps.store.get(job_id)
        except JobNotFound:
            raise HTTPException(404, "no such job") from None

    @signed_in
    async def job_page(request: Request, session: Session) -> Response:
        job = job_or_404(request.path_params["job_id"])
        attempts = attempts_of(deps.artifacts, job, deps.clock())
        events = deps.store.events(job.job_id)
        steps = deps.store.step_timings(job.job_id)
        return page(
            request,
            "job.html",
            session,
            job=job,
            case=views.case_fields(job, full=session.can_act),
            attempts=attempts,
            events=events,
            is_human=views.is_human,
            viewer=trace_viewer_dir() is not None,
            timings={a.attempt: [t for t in steps if t["attempt"] == a.attempt] for a in attempts},
        )

    @signed_in
    async def evidence_file(request: Request, session: Session) -> Response:
        job = job_or_404(request.path_params["job_id"])
        key = request.path_params["key"]
        if not owns_key(deps.artifacts, job, key):
            raise HTTPException(404, "not this job's evidence")
        store = deps.artifacts
        if isinstance(store, LocalArtifactStore):
            path = store.path_of(key).resolve()
            if not path.is_relative_to(store.root) or not path.is_file():
                raise HTTPException(404, "evidence expired or missing")
            return FileResponse(path, headers={"Cache-Control": "private, max-age=300"})
        if not store.exists(key):
            raise HTTPException(404, "evidence expired or missing")
        return RedirectResponse(store.url(key, expires_s=CLICK_LINK_S), status_code=302)

    def attempt_of(job: Any, n: int) -> Any:
        for a in attempts_of(deps.artifacts, job, deps.clock()):
            if a.attempt == n:
                return a
        raise HTTPException(404, "no such attempt")

    @signed_in
    async def trace_zip(request: Request, session: Session) -> Response:
        job = job_or_404(request.path_params["job_id"])
        ev = attempt_of(job, int(request.path_params["attempt"]))
        if not ev.traces:
            raise HTTPException(404, "this attempt has no trace (or it expired)")
        data = merged_trace(deps.artifacts, ev)
        return Response(data, media_type="application/zip")

    @signed_in
    async def bundle_zip(request: Request, session: Session) -> Response:
        job = job_or_404(request.path_params["job_id"])
        ev = attempt_of(job, int(request.path_params["attempt"]))
        selectors = deps.adapters_dir / job.oem / "selectors" if deps.adapters_dir else None
        data = repro_bundle(deps.artifacts, job, ev, selectors)
        name = f"repro-{job.case_id}-attempt-{ev.attempt}.zip"
        return Response(
            data,
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @signed_in
    async def review_page(request: Request, session: Session) -> Response:
        oem = request.query_params.get("oem") or None
        reason = request.query_params.get("reason") or ""
        jobs = deps.store.list_jobs(oem=oem, states=views.REVIEW_STATES)
        if reason:
            jobs = [j for j in jobs if j.reason_code and j.reason_code.value == reason]
        jobs.reverse()
        return page(
            request,
            "review.html",
            session,
            jobs=jobs,
            oem=oem or "",
            reason=reason,
            oems=list(deps.oems),
            reasons=sorted({j.reason_code.value for j in jobs if j.reason_code} | {reason} - {""}),
            message=request.query_params.get("done", ""),
        )

    # ------------------------------------------------------------------ actions
    def actor(session: Session) -> str:
        return f"operator:{session.user}"

    def change_job(job_id: str, change: Callable[[], object]) -> Response:
        """Apply an operator's change to one job, then show the job; a job someone else moved
        meanwhile is a 409 rather than a silent overwrite."""
        try:
            change()
        except StaleState as exc:
            raise HTTPException(409, str(exc)) from None
        return RedirectResponse(f"/jobs/{job_id}", status_code=303)

    @operator_post
    async def redrive(request: Request, session: Session) -> Response:
        job_id = request.path_params["job_id"]
        note = str(request.state.form.get("note") or "re-driven from the console")
        return change_job(
            job_id, lambda: deps.store.redrive(job_id, actor=actor(session), note=note)
        )

    @operator_post
    async def redrive_all(request: Request, session: Session) -> Response:
        form = request.state.form
        oem, reason = str(form.get("oem") or ""), str(form.get("reason") or "")
        note = str(form.get("note") or f"bulk re-drive: {oem or 'all OEMs'} {reason or ''}")
        jobs = deps.store.list_jobs(oem=oem or None, states=[views.S.DEAD_LETTERED])
        done = 0
        for j in jobs:
            if reason and (j.reason_code.value if j.reason_code else "") != reason:
                continue
            try:
                deps.store.redrive(j.job_id, actor=actor(session), note=note.strip())
                done += 1
            except StaleState:
                continue  # someone else moved it meanwhile
        return RedirectResponse(f"/review?done=re-drove+{done}+dead+letters", status_code=303)

    @operator_post
    async def mark_reviewed(request: Request, session: Session) -> Response:
        job_id = request.path_params["job_id"]
        note = str(request.state.form.get("note") or "").strip() or "reviewed"
        return change_job(
            job_id, lambda: deps.store.note_review(job_id, actor=actor(session), note=note)
        )

    @operator_post
    async def submitted_by_hand(request: Request, session: Session) -> Response:
        job_id = request.path_params["job_id"]
        reference = str(request.state.form.get("reference") or "").strip()
        if not reference:
            raise HTTPException(400, "the portal's reference is required")
        job = job_or_404(job_id)
        if deps.crm is not None:
            deps.crm.record_human_submission(job.case_id, reference, session.user)
        return change_job(
            job_id,
            lambda: deps.store.review_submitted_by_hand(
                job_id,
                reference=reference,
                actor=actor(session),
                note=str(request.state.form.get("note") or ""),
            ),
        )

    routes = [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", tonight),
        Route("/jobs", jobs_page),
        Route("/jobs/{job_id}", job_page),
        Route("/jobs/{job_id}/evidence/{key:path}", evidence_file),
        Route("/jobs/{job_id}/attempts/{attempt:int}/trace.zip", trace_zip),
        Route("/jobs/{job_id}/attempts/{attempt:int}/bundle.zip", bundle_zip),
        Route("/jobs/{job_id}/redrive", redrive, methods=["POST"]),
        Route("/jobs/{job_id}/reviewed", mark_reviewed, methods=["POST"]),
        Route("/jobs/{job_id}/submitted-by-hand", submitted_by_hand, methods=["POST"]),
        Route("/review", review_page),
        Route("/review/redrive", redrive_all, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    viewer = trace_viewer_dir()
    if viewer is not None:
        routes.append(Mount("/trace", StaticFiles(directory=str(viewer), html=True), name="trace"))
    return Starlette(routes=routes)


def _oem_name(deps: ConsoleDeps, oem: str) -> str:
    settings = deps.oems.get(oem)
    return getattr(settings, "display_name", oem) if settings is not None else oem
