"""``FaultMiddleware``: latency, HTTP 503s and non-portal pages injected before a handler runs."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.heavy import ASSET_PREFIXES
from sandbox.pages import GARBAGE_PAGE, SERVICE_UNAVAILABLE_PAGE
from sandbox.state import PortalState


class FaultMiddleware:
    """Injects latency and HTTP 503s into every portal page request (not the admin API, not the
    heavy pages' static assets).

    It also pins the knobs in force for the request (``state["sandbox_config"]``) and the key its
    random events are decided under (``state["sandbox_fault_key"]``), so a page never mixes UI
    versions and its pop-ups replay under the same seed.
    """

    def __init__(self, app: ASGIApp, portal: PortalState) -> None:
        self.app = app
        self.portal = portal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or path.startswith(("/__admin", *ASSET_PREFIXES))
            or path == "/favicon.ico"
        ):
            await self.app(scope, receive, send)
            return
        portal = self.portal
        cfg = portal.config
        cookies = Request(scope).cookies
        key = portal.fault_key(scope["method"], path, cookies)
        state = scope.setdefault("state", {})
        state["sandbox_config"] = cfg
        state["sandbox_fault_key"] = key
        if cfg.latency_ms:
            await asyncio.sleep(cfg.latency_ms / 1000)
        if portal.dice.happens(cfg.seed, "error", key, cfg.error_rate):
            response = HTMLResponse(SERVICE_UNAVAILABLE_PAGE, status_code=503)
            response.headers["Retry-After"] = "30"
            await response(scope, receive, send)
            return
        garbage = cfg.garbage_paths
        if (
            path in garbage
            or f"{scope['method']} {path}" in garbage
            or portal.dice.happens(cfg.seed, "garbage", key, cfg.garbage_rate)
        ):
            await HTMLResponse(GARBAGE_PAGE, status_code=200)(scope, receive, send)
            return
        await self.app(scope, receive, send)
