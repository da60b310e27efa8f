"""The ``Portal`` base class every sandbox OEM portal subclasses: its routes and ASGI app.

A concrete portal (northwind, aurora, kestrel) subclasses :class:`Portal` and supplies its URLs,
its texts per UI version, its field layout and its own templates (``templates/<oem>/``), so that
adapters really differ per OEM while the rules (validation, ledger, fault injection) are the same.

The base is built in layers, each in its own module and each using only the ones below it:

- ``state.PortalState``: knobs, sessions, drafts, references (no HTML, no routes);
- ``pages.PortalPages``: templates, texts, test ids, pop-ups;
- ``flow.PortalFlow``: sign-in, home, VIN search, lookup;
- ``claim.ClaimFlow``: the claim steps, review, submit and confirmation;
- ``Portal`` (here): the Starlette app, with ``admin.admin_routes`` and the
  ``middleware.FaultMiddleware`` in front.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.admin import admin_routes
from sandbox.claim import ClaimFlow
from sandbox.faults import FaultConfig
from sandbox.flow import is_local_path
from sandbox.heavy import heavy_routes
from sandbox.middleware import FaultMiddleware
from sandbox.pages import FieldView, FormLayout
from sandbox.state import Clock, Draft, FieldSpec, Session, StepSpec, utc_now

# What a portal module declares itself with (specs, form layout), importable next to Portal.
__all__ = [
    "Clock",
    "Draft",
    "FieldSpec",
    "FieldView",
    "FormLayout",
    "Portal",
    "Session",
    "StepSpec",
    "is_local_path",
]


def _no_favicon(request: Request) -> Response:
    return Response(status_code=204)


class Portal(ClaimFlow):
    """Base class of a sandbox portal: state + Starlette app. Subclasses fill in the class vars.

    ``key``, ``name``, ``brand``, cookies, ``paths``, ``login_fields``, ``search_fields``,
    ``steps``, ``review_slug``, ``texts``, ``id_prefix``, ``form_layout``, ``nav``, ``models``,
    ``sessions_expire`` and ``needs_totp``; markup and CSS come from ``templates/<key>/``.
    """

    def __init__(
        self,
        config: FaultConfig | Mapping[str, Any] | None = None,
        *,
        clock: Clock = utc_now,
        **knobs: Any,
    ) -> None:
        super().__init__(config, clock=clock, **knobs)
        self.app = self._build_app()

    def _build_app(self) -> Starlette:
        p = self.paths
        routes = [
            *admin_routes(self),
            Route("/favicon.ico", _no_favicon),
            Route("/", self.root),
            Route(p["login"], self.login, methods=["GET", "POST"]),
            Route(p["logout"], self.logout, methods=["GET", "POST"]),
            Route(p["home"], self.home),
            Route(p["search"], self.search, methods=["GET", "POST"]),
            Route(p["start"], self.start_claim, methods=["POST"]),
            Route(p["claim"] + "/{draft_id}/{step}", self.claim_step, methods=["GET", "POST"]),
            Route(p["lookup"], self.lookup),
            *heavy_routes(),
            *self.extra_routes(),
        ]
        return Starlette(routes=routes, middleware=[Middleware(FaultMiddleware, portal=self)])

    def extra_routes(self) -> list[Route]:
        """Portal-specific routes (aurora's TOTP page, kestrel's keep-alive)."""
        return []
