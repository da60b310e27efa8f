"""The JSON admin API every portal serves under ``/__admin`` (never faulted, never versioned)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox.state import PortalState


def admin_routes(portal: PortalState) -> list[Route]:
    """``/__admin/config``, ``/__admin/reset``, ``/__admin/ledger`` and its ``/duplicates``."""

    async def config(request: Request) -> JSONResponse:
        if request.method == "POST":
            try:
                body = await request.json()
                if not isinstance(body, dict):
                    raise ValueError("expected a JSON object of knobs")
                portal.configure(**body)
            except (ValueError, TypeError) as exc:  # pydantic.ValidationError is a ValueError
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"oem": portal.key, **portal.config.model_dump()})

    async def reset(request: Request) -> JSONResponse:
        portal.reset()
        return JSONResponse({"oem": portal.key, **portal.config.model_dump()})

    async def ledger(request: Request) -> JSONResponse:
        """Every submission, oldest first; ``?case_id=`` / ``?vin=`` narrow it down."""
        entries = portal.ledger.entries()
        if case_id := request.query_params.get("case_id"):
            entries = [e for e in entries if e.case_id == case_id]
        if vin := request.query_params.get("vin"):
            entries = [e for e in entries if e.vin == vin.upper()]
        return JSONResponse([e.model_dump(mode="json") for e in entries])

    async def duplicates(request: Request) -> JSONResponse:
        return JSONResponse([d.model_dump(mode="json") for d in portal.ledger.duplicates()])

    return [
        Route("/__admin/config", config, methods=["GET", "POST"]),
        Route("/__admin/reset", reset, methods=["POST"]),
        Route("/__admin/ledger", ledger, methods=["GET"]),
        Route("/__admin/ledger/duplicates", duplicates, methods=["GET"]),
    ]
