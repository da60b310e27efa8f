"""The REST surface of the local Salesforce org, in Salesforce's own shapes.

`/services/oauth2/token` (JWT bearer and client credentials), `/services/data/vXX.X/query`
with `nextRecordsUrl` paging, `sobjects/{type}/{id}` GET / PATCH, `sobjects/{type}/{field}/{value}`
upsert, `composite/sobjects` (create / update, and upsert by external id), 200 records a call.
Errors are lists of `{message, errorCode, fields}`; record-level failures in a collection are
`{id, success: false, errors: [{statusCode, message, fields}]}`. `/__admin/*` drives the knobs.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.salesforce.org import ORG_ID, ApiError, Org, ValidationRule

#: The most records one sObject Collections call takes.
COLLECTION_MAX = 200


def sf_json(value: Any) -> Any:
    """Record values as the REST API renders them (date-times as `...T...000+0000`)."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    return value


def _render(obj: str, row: dict[str, Any], version: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "Id" in row:
        out["attributes"] = {
            "type": obj,
            "url": f"/services/data/v{version}/sobjects/{obj}/{row['Id']}",
        }
    else:
        out["attributes"] = {"type": "AggregateResult"}
    out.update({k: sf_json(v) for k, v in row.items()})
    return out


def _error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def _record_error(exc: ApiError) -> dict[str, Any]:
    return {"statusCode": exc.code, "message": exc.message, "fields": exc.fields}


class OrgClockDate:
    """Stamps every answer's `Date` header with the org's clock, as Salesforce does: clients
    read it to know which SystemModstamp seconds are over (tests move this clock)."""

    def __init__(self, app: ASGIApp, org: Org):
        self.app = app
        self.org = org

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_dated(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                date = format_datetime(self.org.now(), usegmt=True).encode()
                message = {**message, "headers": [*headers, (b"date", date)]}
            await send(message)

        await self.app(scope, receive, send_dated)


class SalesforceApp:
    """Builds the Starlette app over one `Org`."""

    def __init__(self, org: Org, base_url: str = ""):
        self.org = org
        self.base_url = base_url  # set by the server once its port is known
        data = "/services/data/v{version}"
        self.routes = Starlette(
            routes=[
                Route("/services/oauth2/token", self.token, methods=["POST"]),
                Route(data + "/query", self.query, methods=["GET"]),
                Route(data + "/query/{locator}", self.query_more, methods=["GET"]),
                Route(data + "/sobjects/{obj}", self.create, methods=["POST"]),
                Route(data + "/sobjects/{obj}/{id}", self.record, methods=["GET", "PATCH"]),
                Route(data + "/sobjects/{obj}/{field}/{value}", self.upsert, methods=["PATCH"]),
                Route(data + "/composite/sobjects", self.collection, methods=["POST", "PATCH"]),
                Route(
                    data + "/composite/sobjects/{obj}/{field}",
                    self.collection_upsert,
                    methods=["PATCH"],
                ),
                Route("/__admin/config", self.admin_config, methods=["GET", "POST"]),
                Route("/__admin/reset", self.admin_reset, methods=["POST"]),
                Route("/__admin/ledger", self.admin_ledger, methods=["GET"]),
                Route("/__admin/records/{obj}", self.admin_records, methods=["GET", "POST"]),
            ]
        )
        self.app: ASGIApp = OrgClockDate(self.routes, org)

    # ------------------------------------------------------------------ OAuth
    async def token(self, request: Request) -> Response:
        form = await request.form()
        grant = form.get("grant_type")
        client = None
        if grant == "client_credentials":
            client = self.org.clients.get(str(form.get("client_id")))
            if client is None or client.client_secret != form.get("client_secret"):
                client = None
        elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            client = self._jwt_client(str(form.get("assertion") or ""))
        else:
            return JSONResponse(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
                status_code=400,
            )
        if client is None:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "authentication failure"},
                status_code=400,
            )
        token = self.org.issue_token(client.user_id)
        return JSONResponse(
            {
                "access_token": token,
                "instance_url": self.base_url,
                "id": f"{self.base_url}/id/{ORG_ID}/{client.user_id}",
                "token_type": "Bearer",
                "issued_at": str(int(self.org.now().timestamp() * 1000)),
                "scope": "api",
            }
        )

    def _jwt_client(self, assertion: str) -> Any:
        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
            client = self.org.clients.get(str(claims.get("iss")))
            if client is None or client.public_key_pem is None:
                return None
            jwt.decode(
                assertion,
                client.public_key_pem,
                algorithms=["RS256"],
                audience=claims.get("aud"),
                options={"require": ["exp", "iss", "sub", "aud"]},
            )
        except jwt.PyJWTError:
            return None
        return client if claims.get("sub") == client.username else None

    # ------------------------------------------------------------------ queries
    async def query(self, request: Request) -> Response:
        version = request.path_params["version"]
        try:
            self.org.authorize(request.headers.get("authorization"))
            q = self.org.query(request.query_params.get("q", ""))
            rows = q.run(self.org.records(q.object))
            batch, locator = self.org.page(q.object, rows)
        except ApiError as exc:
            return _error(exc)
        return self._page(q.object, batch, locator, version, total=len(rows))

    async def query_more(self, request: Request) -> Response:
        version = request.path_params["version"]
        try:
            self.org.authorize(request.headers.get("authorization"))
            locator = request.path_params["locator"]
            base, _, _offset = locator.partition("-")
            obj, batch, more = self.org.more(base)
        except ApiError as exc:
            return _error(exc)
        return self._page(obj, batch, more, version, total=None)

    def _page(
        self, obj: str, batch: list[dict[str, Any]], locator: str | None, version: str, total: Any
    ) -> Response:
        records = [_render(obj, row, version) for row in batch]
        body: dict[str, Any] = {"totalSize": total if total is not None else len(records)}
        body["done"] = locator is None
        if locator is not None:
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{len(batch)}"
        body["records"] = records
        return JSONResponse(body)

    # ------------------------------------------------------------------ records
    async def record(self, request: Request) -> Response:
        obj, record_id = request.path_params["obj"], request.path_params["id"]
        try:
            user = self.org.authorize(request.headers.get("authorization"))
            if request.method == "GET":
                row = self.org.get(obj, record_id)
                wanted = request.query_params.get("fields")
                if wanted:
                    row = {k: row.get(k) for k in ["Id", *wanted.split(",")]}
                return JSONResponse(_render(obj, row, request.path_params["version"]))
            values = await request.json()
            self.org.write("update", obj, values, user, record_id=record_id)
        except ApiError as exc:
            return _error(exc)
        return Response(status_code=204)

    async def create(self, request: Request) -> Response:
        obj = request.path_params["obj"]
        try:
            user = self.org.authorize(request.headers.get("authorization"))
            record_id, _ = self.org.write("create", obj, await request.json(), user)
        except ApiError as exc:
            return _error(exc)
        return JSONResponse({"id": record_id, "success": True, "errors": []}, status_code=201)

    async def upsert(self, request: Request) -> Response:
        p = request.path_params
        try:
            user = self.org.authorize(request.headers.get("authorization"))
            values = {**(await request.json()), p["field"]: p["value"]}
            existing = self.org.find(p["obj"], p["field"], p["value"])
            record_id, created = self.org.write(
                "upsert", p["obj"], values, user, record_id=existing["Id"] if existing else None
            )
        except ApiError as exc:
            return _error(exc)
        body = {"id": record_id, "success": True, "errors": [], "created": created}
        return JSONResponse(body, status_code=201 if created else 200)

    async def collection(self, request: Request) -> Response:
        try:
            user = self.org.authorize(request.headers.get("authorization"))
            records = self._collection_records(await request.json())
        except ApiError as exc:
            return _error(exc)
        results = []
        for record in records:
            values = {k: v for k, v in record.items() if k not in ("attributes", "id", "Id")}
            obj = (record.get("attributes") or {}).get("type", "")
            record_id = record.get("id") or record.get("Id")
            try:
                if request.method == "PATCH":
                    if not record_id:
                        raise ApiError(400, "MISSING_ARGUMENT", "Id not specified", ["Id"])
                    self.org.write("update", obj, values, user, record_id=record_id)
                else:
                    record_id, _ = self.org.write("create", obj, values, user)
                results.append({"id": record_id, "success": True, "errors": []})
            except ApiError as exc:
                results.append({"id": record_id, "success": False, "errors": [_record_error(exc)]})
        return JSONResponse(results)

    async def collection_upsert(self, request: Request) -> Response:
        p = request.path_params
        try:
            user = self.org.authorize(request.headers.get("authorization"))
            records = self._collection_records(await request.json())
        except ApiError as exc:
            return _error(exc)
        results = []
        for record in records:
            values = {k: v for k, v in record.items() if k != "attributes"}
            key = values.get(p["field"])
            try:
                if not key:
                    raise ApiError(400, "MISSING_ARGUMENT", f"{p['field']} not specified")
                existing = self.org.find(p["obj"], p["field"], key)
                record_id, created = self.org.write(
                    "upsert", p["obj"], values, user, record_id=existing["Id"] if existing else None
                )
                results.append({"id": record_id, "success": True, "errors": [], "created": created})
            except ApiError as exc:
                results.append({"success": False, "errors": [_record_error(exc)]})
        return JSONResponse(results)

    @staticmethod
    def _collection_records(body: Any) -> list[dict[str, Any]]:
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list):
            raise ApiError(400, "JSON_PARSER_ERROR", "records is required")
        if len(records) > COLLECTION_MAX:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_MAX} records "
                "into this call",
            )
        return records

    # ------------------------------------------------------------------ admin
    async def admin_config(self, request: Request) -> Response:
        if request.method == "POST":
            knobs = await request.json()
            configure(self.org, **knobs)
        f = self.org.faults
        return JSONResponse(
            {
                "limit_exceeded_until": sf_json(f.limit_exceeded_until),
                "unavailable_next": f.unavailable_next,
                "expire_sessions_after": f.expire_sessions_after,
                "validation_rules": [vars(r) for r in f.validation_rules],
                "batch_size": self.org.batch_size,
            }
        )

    async def admin_reset(self, request: Request) -> Response:
        self.org.reset()
        return JSONResponse({"reset": True})

    async def admin_ledger(self, request: Request) -> Response:
        entries = [
            {**vars(e), "at": sf_json(e.at)}
            for e in self.org.writes(request.query_params.get("object"))
        ]
        return Response(json.dumps(entries, default=str), media_type="application/json")

    async def admin_records(self, request: Request) -> Response:
        obj = request.path_params["obj"]
        if request.method == "POST":
            body = await request.json()
            ids = [self.org.insert(obj, r) for r in (body if isinstance(body, list) else [body])]
            return JSONResponse({"ids": ids}, status_code=201)
        rows = [_render(obj, r, "62.0") for r in self.org.records(obj)]
        return Response(json.dumps(rows, default=str), media_type="application/json")


def configure(org: Org, **knobs: Any) -> None:
    """Set fault knobs: limit_exceeded_s (from now, on the org's clock), unavailable_next,
    expire_sessions (now), expire_sessions_after (N calls), validation_rules, batch_size,
    advance_s (move the org's clock)."""
    with org.lock:
        if "advance_s" in knobs:
            org.advance(float(knobs.pop("advance_s")))
        if "limit_exceeded_s" in knobs:
            seconds = float(knobs.pop("limit_exceeded_s"))
            org.faults.limit_exceeded_until = org.now() + timedelta(seconds=seconds)
        if knobs.pop("expire_sessions", False):
            org.expire_sessions()
        if "validation_rules" in knobs:
            org.faults.validation_rules = [
                ValidationRule(**r) for r in knobs.pop("validation_rules")
            ]
        if "batch_size" in knobs:
            org.batch_size = int(knobs.pop("batch_size"))
        for name in ("unavailable_next", "expire_sessions_after"):
            if name in knobs:
                setattr(org.faults, name, knobs.pop(name))
        if knobs:
            raise ValueError(f"unknown Salesforce sandbox knobs: {sorted(knobs)}")
