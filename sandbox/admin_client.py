"""The client side of a portal's ``/__admin`` JSON API, for processes outside the portal's own.

Requests go straight to the portal, never through a proxy from the environment: the sandbox only
listens on loopback, and a corporate ``HTTP_PROXY`` would otherwise swallow them.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from typing import Any


def admin_request(url: str, body: Any = None, *, timeout: float = 10.0) -> Any:
    """GET ``url`` when ``body`` is None, otherwise POST it as JSON; returns the decoded answer.

    An HTTP error status raises ``urllib.error.HTTPError`` and an unreachable portal ``OSError``.
    """
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        headers={"Content-Type": "application/json"},
        method="GET" if data is None else "POST",
    )
    with opener.open(request, timeout=timeout) as response:
        return json.loads(response.read())


def _admin(base_url: str, endpoint: str) -> str:
    return f"{base_url.rstrip('/')}/__admin/{endpoint}"


def config(base_url: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """The knobs in force on the portal at ``base_url``, plus ``"oem"``."""
    return admin_request(_admin(base_url, "config"), timeout=timeout)


def set_knobs(base_url: str, knobs: Mapping[str, Any], *, timeout: float = 10.0) -> dict[str, Any]:
    """Change some knobs (the others stay); returns the new config. A bad knob is HTTP 400."""
    return admin_request(_admin(base_url, "config"), dict(knobs), timeout=timeout)


def reset(base_url: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """Empty the ledger, sessions and drafts; knobs back to start-up. Returns the config."""
    return admin_request(_admin(base_url, "reset"), {}, timeout=timeout)


def ledger(base_url: str, *, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Every submission the portal received, oldest first (``LedgerEntry`` as JSON)."""
    return admin_request(_admin(base_url, "ledger"), timeout=timeout)


def duplicates(base_url: str, *, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Case ids the portal received more than once, with their references."""
    return admin_request(_admin(base_url, "ledger/duplicates"), timeout=timeout)
