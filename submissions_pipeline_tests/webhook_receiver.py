"""A webhook receiver for the tests: verifies signatures and de-duplicates by event id."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from submissions_pipeline.api.dispatcher import EVENT_ID_HEADER
from submissions_pipeline.api.signing import SIGNATURE_HEADER, SignatureError, verify


class Receiver:
    """What a careful subscriber does: verify, de-duplicate by event id, then process."""

    def __init__(self, secret: str, fail_with: int | None = None):
        self.secret = secret
        self.fail_with = fail_with
        self.received: list[tuple[str, bytes]] = []  # every delivery, duplicates included
        self.processed: dict[str, dict[str, Any]] = {}
        self.refused = 0

    async def handle(self, request: Request) -> JSONResponse:
        body = await request.body()
        try:
            verify(request.headers.get(SIGNATURE_HEADER), body, [self.secret], time.time())
        except SignatureError:
            self.refused += 1
            return JSONResponse({"error": "bad signature"}, status_code=401)
        if self.fail_with:
            return JSONResponse({"error": "down"}, status_code=self.fail_with)
        event_id = request.headers[EVENT_ID_HEADER]
        self.received.append((event_id, body))
        if event_id not in self.processed:
            self.processed[event_id] = json.loads(body)
        return JSONResponse({"ok": True})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook", self.handle, methods=["POST"])])
