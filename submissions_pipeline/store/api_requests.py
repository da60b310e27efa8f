"""The inbound API's SQL: accepted requests and the nonces that refuse a replayed signature."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from submissions_pipeline.domain.clock import Clock
from submissions_pipeline.store.errors import StoreError
from submissions_pipeline.store.models import _aware
from submissions_pipeline.store.reconnect import reconnecting
from submissions_pipeline.store.schema import api_nonces, api_requests


class ReplayedRequest(StoreError):
    """This signature was accepted before: the request is a replay."""


class ApiRequest(BaseModel):
    """An accepted inbound request, as the sensor that acts on it reads it."""

    sequence: int
    request_id: str
    client: str
    kind: str
    oem: str | None
    params: dict[str, Any]
    idempotency_key: str | None
    created_at: datetime


class AcceptedRequest(BaseModel):
    """What recording a request did: its id, and whether it is new (False: a re-send)."""

    request_id: str
    created: bool


def _take_nonce(conn: Connection, nonce: str, expires_at: datetime, now: datetime) -> None:
    conn.execute(delete(api_nonces).where(api_nonces.c.expires_at < now))
    try:
        with conn.begin_nested():
            conn.execute(insert(api_nonces).values(nonce=nonce, expires_at=expires_at))
    except IntegrityError as exc:
        raise ReplayedRequest(nonce[:12]) from exc


class ApiRequestLog:
    """The API half of `JobStore`: a request and its nonce commit together, or neither does."""

    engine: Engine
    clock: Clock

    @reconnecting
    def use_nonce(self, nonce: str, expires_at: datetime, now: datetime | None = None) -> None:
        """Remember a signature until it expires; ReplayedRequest when it was seen before."""
        with self.engine.begin() as conn:
            _take_nonce(conn, nonce, expires_at, now or self.clock())

    @reconnecting
    def record_api_request(
        self,
        *,
        client: str,
        kind: str,
        params: dict[str, Any],
        oem: str | None = None,
        nonce: str | None = None,
        nonce_expires_at: datetime | None = None,
        idempotency_key: str | None = None,
        now: datetime | None = None,
    ) -> AcceptedRequest:
        """Record an accepted request durably, with its nonce in the same transaction.

        A re-send under the same `idempotency_key` returns the first request's id and records
        nothing; a replayed nonce raises ReplayedRequest and records nothing.
        """
        now = now or self.clock()
        try:
            return self._record(
                client, kind, params, oem, nonce, nonce_expires_at, idempotency_key, now
            )
        except IntegrityError:
            # A concurrent re-send under the same idempotency key won: answer with its id.
            r = api_requests.c
            with self.engine.connect() as conn:
                found = conn.execute(
                    select(r.request_id).where(
                        r.client == client, r.idempotency_key == idempotency_key
                    )
                ).first()
            if found is None:
                raise
            return AcceptedRequest(request_id=found.request_id, created=False)

    def _record(
        self,
        client: str,
        kind: str,
        params: dict[str, Any],
        oem: str | None,
        nonce: str | None,
        nonce_expires_at: datetime | None,
        idempotency_key: str | None,
        now: datetime,
    ) -> AcceptedRequest:
        r = api_requests.c
        with self.engine.begin() as conn:
            if nonce is not None:
                _take_nonce(conn, nonce, nonce_expires_at or now, now)
            if idempotency_key is not None:
                found = conn.execute(
                    select(r.request_id).where(
                        r.client == client, r.idempotency_key == idempotency_key
                    )
                ).first()
                if found is not None:
                    return AcceptedRequest(request_id=found.request_id, created=False)
            request_id = f"req_{uuid.uuid4().hex}"
            conn.execute(
                insert(api_requests).values(
                    request_id=request_id,
                    client=client,
                    kind=kind,
                    oem=oem,
                    params=params,
                    idempotency_key=idempotency_key,
                    created_at=now,
                )
            )
        return AcceptedRequest(request_id=request_id, created=True)

    @reconnecting
    def api_requests_after(
        self, sequence: int, *, kind: str | None = None, limit: int = 100
    ) -> list[ApiRequest]:
        """Accepted requests after a sequence number (a sensor's cursor), oldest first."""
        r = api_requests.c
        stmt = select(api_requests).where(r.sequence > sequence).order_by(r.sequence).limit(limit)
        if kind is not None:
            stmt = stmt.where(r.kind == kind)
        with self.engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(stmt)]
        for m in rows:
            m["created_at"] = _aware(m["created_at"])
        return [ApiRequest.model_validate(m) for m in rows]
