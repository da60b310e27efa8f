"""The inbound API (Starlette): a signed "Run now" per OEM and cases pushed by a CRM.

Every request is authenticated (an HMAC signature over the timestamp and raw body, or a bearer
token for clients that cannot sign), rate-limited per client, and recorded durably before it
is answered `202`; a Dagster sensor turns recorded run-now requests into runs. Anything refused
is refused with a 4xx and a JSON error, before anything is recorded.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from submissions_pipeline.api.openapi import openapi_document
from submissions_pipeline.api.signing import SIGNATURE_HEADER, TOLERANCE_S, SignatureError, verify
from submissions_pipeline.crm.base import CrmClient, InvalidCrmRecord
from submissions_pipeline.settings import Settings
from submissions_pipeline.store import JobStore
from submissions_pipeline.store.api_requests import ReplayedRequest

CLIENT_HEADER = "Submissions-Client"
IDEMPOTENCY_HEADER = "Idempotency-Key"
RUN_NOW, PUSHED_CASE = "run_now", "case"


class ApiError(Exception):
    """A refusal: its status and a short code and message for the JSON body."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        body = {"error": self.code, "message": self.message}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


class RunNowRequest(BaseModel):
    """The batch parameters a launch takes (the launchpad's `submission_runs` config)."""

    model_config = ConfigDict(extra="forbid")

    max_jobs: int | None = Field(None, ge=0, le=100_000, description="Attempts the run may start.")
    priority_order: Literal["priority", "redaction_sensitive_first"] | None = Field(
        None, description="Which due jobs the workers claim first."
    )


class ApiClients(BaseModel):
    """Who may call: HMAC secrets per client (several while one rotates), bearer tokens for
    clients that cannot sign."""

    hmac: dict[str, list[str]] = Field(default_factory=dict)
    bearer: dict[str, list[str]] = Field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiClients:
        def parsed(value: Any) -> dict[str, list[str]]:
            return json.loads(value.get_secret_value()) if value is not None else {}

        return cls(hmac=parsed(settings.api_clients), bearer=parsed(settings.api_bearer_tokens))


class RateLimiter:
    """A token bucket per client: `per_minute` requests, refilled continuously."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, client: str) -> float | None:
        """None when the client may go on; else the seconds until it may."""
        now = self.clock()
        tokens, at = self._buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[client] = (tokens - 1, now)
        return None


class _Authenticated(BaseModel):
    client: str
    nonce: str | None = None  # the matching signature; None for a bearer token
    nonce_expires_at: datetime | None = None


def create_app(
    store: JobStore,
    crm: CrmClient | None,
    oems: Collection[str],
    clients: ApiClients,
    *,
    rate_per_minute: int = 60,
    max_body_bytes: int = 65536,
    wall_clock: Callable[[], float] = time.time,
    rate_clock: Callable[[], float] = time.monotonic,
) -> Starlette:
    """The API over one job store, one CRM client and the registered OEM keys."""
    limiter = RateLimiter(rate_per_minute, rate_clock)
    known_oems = frozenset(oems)

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            raise ApiError(413, "body_too_large", f"bodies are limited to {max_body_bytes} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body_bytes:
                raise ApiError(
                    413, "body_too_large", f"bodies are limited to {max_body_bytes} bytes"
                )
        return body

    def authenticate(request: Request, body: bytes) -> _Authenticated:
        authorization = request.headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
            for client, tokens in clients.bearer.items():
                if any(hmac.compare_digest(token, t) for t in tokens):
                    return _Authenticated(client=client)
            raise ApiError(401, "unauthenticated", "unknown bearer token")
        client = request.headers.get(CLIENT_HEADER, "")
        secrets = clients.hmac.get(client)
        if not secrets:
            raise ApiError(401, "unauthenticated", f"unknown or missing {CLIENT_HEADER}")
        try:
            timestamp, signature = verify(
                request.headers.get(SIGNATURE_HEADER), body, secrets, wall_clock()
            )
        except SignatureError as err:
            code = "stale_timestamp" if "tolerance" in err.reason else "bad_signature"
            raise ApiError(401, code, err.reason) from None
        expires = datetime.fromtimestamp(timestamp + TOLERANCE_S, UTC)
        # Kept a second past the tolerance: by then the timestamp alone refuses a replay.
        return _Authenticated(
            client=client, nonce=signature, nonce_expires_at=expires + timedelta(seconds=1)
        )

    def throttle(client: str) -> None:
        wait = limiter.take(client)
        if wait is not None:
            raise ApiError(
                429, "rate_limited", "too many requests", {"Retry-After": str(int(wait) + 1)}
            )

    def parse_json(body: bytes) -> Any:
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, "malformed_json", "the body is not valid JSON") from None

    async def guarded(request: Request) -> tuple[_Authenticated, Any]:
        body = await read_body(request)
        who = authenticate(request, body)
        throttle(who.client)
        return who, parse_json(body)

    def accepted(request_id: str, created: bool, **extra: Any) -> JSONResponse:
        body = {"request_id": request_id, "status": "accepted" if created else "duplicate", **extra}
        return JSONResponse(body, status_code=202 if created else 200)

    async def run_now(request: Request) -> JSONResponse:
        try:
            who, data = await guarded(request)
            oem = request.path_params["oem"]
            if oem not in known_oems:
                raise ApiError(404, "unknown_oem", f"no OEM {oem!r} is registered")
            try:
                params = RunNowRequest.model_validate(data)
            except ValidationError as exc:
                raise ApiError(422, "invalid_parameters", _errors(exc)) from None
            try:
                result = store.record_api_request(
                    client=who.client,
                    kind=RUN_NOW,
                    oem=oem,
                    params=params.model_dump(exclude_none=True),
                    nonce=who.nonce,
                    nonce_expires_at=who.nonce_expires_at,
                    idempotency_key=request.headers.get(IDEMPOTENCY_HEADER),
                )
            except ReplayedRequest:
                raise ApiError(
                    409, "replayed", "this signed request was already accepted"
                ) from None
            return accepted(result.request_id, result.created, oem=oem)
        except ApiError as err:
            return err.response()

    async def push_case(request: Request) -> JSONResponse:
        try:
            who, data = await guarded(request)
            if not isinstance(data, dict) or not data:
                raise ApiError(422, "invalid_case", "a case is a non-empty JSON object")
            if crm is None:
                raise ApiError(501, "not_supported", "no CRM is configured")
            try:
                if who.nonce is not None:
                    store.use_nonce(who.nonce, who.nonce_expires_at or datetime.now(UTC))
            except ReplayedRequest:
                raise ApiError(
                    409, "replayed", "this signed request was already accepted"
                ) from None
            try:
                case_id = crm.accept_pushed_case(data)
            except InvalidCrmRecord as exc:
                raise ApiError(422, "invalid_case", str(exc)) from None
            except NotImplementedError:
                raise ApiError(
                    501, "not_supported", "this CRM does not take pushed cases"
                ) from None
            result = store.record_api_request(
                client=who.client,
                kind=PUSHED_CASE,
                oem=str(data.get("oem")),
                params={"case_id": case_id},
                idempotency_key=request.headers.get(IDEMPOTENCY_HEADER),
            )
            return accepted(result.request_id, result.created, case_id=case_id)
        except ApiError as err:
            return err.response()

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(openapi_document(sorted(known_oems)))

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    routes: Sequence[Route] = [
        Route("/v1/oems/{oem}/run-now", run_now, methods=["POST"]),
        Route("/v1/cases", push_case, methods=["POST"]),
        Route("/v1/openapi.json", openapi, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
    ]
    return Starlette(routes=list(routes))


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
    )
