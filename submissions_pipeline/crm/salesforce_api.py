"""The connection to a Salesforce org: OAuth 2.0 token, the simple-salesforce client, and the
rules for expired sessions, API limits and server errors.

Tokens come from a configurable token URL (the production login host by default) through the
JWT bearer flow (server to server, a certificate on the connected app) or client credentials.
simple-salesforce then gets `session_id` and `instance_url` and a pinned API version. A call
that meets an expired session (INVALID_SESSION_ID) logs in again once and is retried; the API
limit (403 REQUEST_LIMIT_EXCEEDED, a rolling 24-hour limit) and 5xx answers back off with
jitter up to a budget, then raise CrmUnavailable so the caller keeps the work for later.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal, TypeVar
from urllib.parse import urlparse

import jwt
import requests
from pydantic import BaseModel, Field
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceRefusedRequest,
)
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from submissions_pipeline.crm.base import CrmError, CrmUnavailable

T = TypeVar("T")

#: The API version every call is pinned to (a newer org still answers it the same way).
API_VERSION = "62.0"
PRODUCTION_TOKEN_URL = "https://login.salesforce.com/services/oauth2/token"


class SalesforceAuthError(CrmError):
    """The token endpoint refused the integration's credentials (no retry helps)."""


def error_code(exc: SalesforceError) -> str | None:
    """Salesforce's errorCode from an error body (a list of {message, errorCode, fields})."""
    content = exc.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return content[0].get("errorCode")
    return None


def is_transient(exc: BaseException) -> bool:
    """Worth waiting for: the API limit, a 5xx, a dropped connection."""
    if isinstance(exc, SalesforceRefusedRequest):
        return error_code(exc) == "REQUEST_LIMIT_EXCEEDED"
    if isinstance(exc, SalesforceGeneralError):
        return exc.status >= 500
    return isinstance(exc, requests.ConnectionError | requests.Timeout)


@dataclass(repr=False)
class SalesforceAuth:
    """How the integration gets a token. Secrets live here only; `repr` shows none."""

    client_id: str
    flow: Literal["jwt", "client_credentials"] = "jwt"
    token_url: str = PRODUCTION_TOKEN_URL
    username: str | None = None  # jwt: the integration user the token acts as
    private_key: str | None = field(default=None)  # jwt: the connected app's key (PEM)
    client_secret: str | None = field(default=None)  # client_credentials
    audience: str | None = None  # jwt `aud`: the login host; default: the token URL's host

    def __repr__(self) -> str:
        return f"SalesforceAuth(flow={self.flow!r}, client_id=…, token_url={self.token_url!r})"

    def form(self) -> dict[str, str]:
        """The token request's form (holds a secret: never log it)."""
        if self.flow == "client_credentials":
            if not self.client_secret:
                raise SalesforceAuthError("client credentials need a client secret")
            return {
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            }
        if not self.username or not self.private_key:
            raise SalesforceAuthError("the JWT bearer flow needs a username and a private key")
        host = urlparse(self.token_url)
        claims = {
            "iss": self.client_id,
            "sub": self.username,
            "aud": self.audience or f"{host.scheme}://{host.netloc}",
            "exp": int(time.time()) + 180,
        }
        assertion = jwt.encode(claims, self.private_key, algorithm="RS256")
        return {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}


class SalesforceToken(BaseModel):
    """What a login gives: the session, where the org lives and who the integration is."""

    access_token: str = Field(repr=False)
    instance_url: str
    user_id: str | None = None


class Backoff(BaseModel):
    """How long to wait out the API limit and server errors before giving the work back."""

    max_attempts: int = Field(12, ge=1)
    budget_s: float = Field(300.0, gt=0, description="Total seconds of waiting per call.")
    base_s: float = Field(1.0, gt=0, description="Wait scale (exponential, full jitter).")
    max_wait_s: float = Field(60.0, gt=0)


def login(auth: SalesforceAuth, session: requests.Session) -> SalesforceToken:
    """One token from the token URL."""
    try:
        r = session.post(auth.token_url, data=auth.form(), timeout=30)
    except requests.RequestException as exc:
        raise CrmUnavailable(
            f"Salesforce token endpoint unreachable: {type(exc).__name__}"
        ) from None
    if r.status_code >= 500:
        raise CrmUnavailable(f"Salesforce token endpoint answered {r.status_code}")
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    if r.status_code != 200 or "access_token" not in body:
        raise SalesforceAuthError(
            f"Salesforce refused the login ({r.status_code} {body.get('error', '')}: "
            f"{body.get('error_description', '')})"
        )
    identity = str(body.get("id") or "")
    return SalesforceToken(
        access_token=body["access_token"],
        instance_url=body["instance_url"],
        user_id=identity.rstrip("/").rsplit("/", 1)[-1] if identity else None,
    )


@dataclass(frozen=True)
class OrgAnswer:
    """When the org answered a call, by its own clock (the HTTP Date header, to the second),
    and how long the call took."""

    date: datetime | None
    elapsed_s: float

    def settled_before(self) -> datetime | None:
        """Records stamped before this instant can no longer change without a later stamp.

        SystemModstamp has one-second precision: a record edited in the second the query ran can
        share the stamp of a record the query returned, and an (stamp, Id) cursor past it would
        skip that edit for good. The query ran no earlier than `date - elapsed`, so every stamp
        before that second's start is settled."""
        if self.date is None:
            return None
        return self.date.replace(microsecond=0) - timedelta(seconds=math.ceil(self.elapsed_s))


class SalesforceApi:
    """A logged-in simple-salesforce client and the retry rules around every call."""

    def __init__(
        self,
        auth: SalesforceAuth,
        *,
        session: requests.Session | None = None,
        api_version: str = API_VERSION,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.auth = auth
        self.session = session or requests.Session()
        self.api_version = api_version
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self._sf: Salesforce | None = None
        self.user_id: str | None = None
        self.logins = 0
        self.last_answer: OrgAnswer | None = None
        self.session.hooks.setdefault("response", []).append(self._note_answer)

    def _note_answer(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        date = response.headers.get("Date")
        try:
            stamp = parsedate_to_datetime(date) if date else None
        except (TypeError, ValueError):
            stamp = None
        self.last_answer = OrgAnswer(date=stamp, elapsed_s=response.elapsed.total_seconds())

    def client(self) -> Salesforce:
        """The logged-in client (logs in on first use)."""
        if self._sf is None:
            self.relogin()
        assert self._sf is not None
        return self._sf

    def relogin(self) -> None:
        token = login(self.auth, self.session)
        self.logins += 1
        self.user_id = token.user_id
        self._sf = Salesforce(
            session_id=token.access_token,
            instance_url=token.instance_url,
            version=self.api_version,
            session=self.session,
        )

    def call(self, fn: Callable[[Salesforce], T]) -> T:
        """Run one API call with the session, limit and 5xx rules; CrmUnavailable when the
        budget is spent."""

        def over_budget(state: RetryCallState) -> bool:
            return state.idle_for >= self.backoff.budget_s

        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            wait=wait_random_exponential(
                multiplier=self.backoff.base_s, max=self.backoff.max_wait_s
            ),
            stop=stop_after_attempt(self.backoff.max_attempts) | over_budget,
            sleep=self.sleep,
            reraise=True,
        )
        try:
            return retrying(self._with_session, fn)
        except SalesforceError as exc:
            if is_transient(exc):
                code = error_code(exc) or exc.status
                raise CrmUnavailable(
                    f"Salesforce still refuses calls after backing off: {code}"
                ) from None
            raise
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise CrmUnavailable(f"Salesforce unreachable: {type(exc).__name__}") from None

    def _with_session(self, fn: Callable[[Salesforce], T]) -> T:
        try:
            return fn(self.client())
        except SalesforceExpiredSession:
            self.relogin()  # once: a session that dies again at once is not an expiry
            return fn(self.client())


def content_errors(result: Any) -> list[dict[str, Any]]:
    """The errors of one sObject Collections result (`statusCode` per error)."""
    return list(result.get("errors") or []) if isinstance(result, dict) else []
