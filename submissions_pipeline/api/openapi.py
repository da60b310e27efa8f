"""The API's OpenAPI document, served at `/v1/openapi.json` (a test keeps it true to the app)."""

from __future__ import annotations

from typing import Any

from submissions_pipeline.api.payloads import EVENT_TYPES

_ERROR = {
    "description": "Refused; nothing was recorded.",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
            }
        }
    },
}
_ACCEPTED = {
    "type": "object",
    "required": ["request_id", "status"],
    "properties": {
        "request_id": {"type": "string"},
        "status": {"type": "string", "enum": ["accepted", "duplicate"]},
    },
}


def _responses(extra: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "202": {
            "description": "Accepted and recorded durably.",
            "content": {"application/json": {"schema": _ACCEPTED}},
        },
        "200": {
            "description": "A re-send under an Idempotency-Key already accepted: the first "
            "request's id, nothing recorded again.",
            "content": {"application/json": {"schema": _ACCEPTED}},
        },
        "400": {**_ERROR, "description": "malformed_json: the body is not JSON."},
        "401": {
            **_ERROR,
            "description": "unauthenticated, bad_signature or stale_timestamp (more than 300 s "
            "from the server's clock).",
        },
        "409": {**_ERROR, "description": "replayed: this exact signed request was accepted."},
        "413": {**_ERROR, "description": "body_too_large."},
        "429": {**_ERROR, "description": "rate_limited: see Retry-After."},
    }
    for status, description in extra.items():
        out[status] = {**_ERROR, "description": description}
    return out


_SECURITY_PARAMETERS = [
    {
        "name": "Submissions-Client",
        "in": "header",
        "required": False,
        "description": "The client id whose secrets sign the request (HMAC clients).",
        "schema": {"type": "string"},
    },
    {
        "name": "Submissions-Signature",
        "in": "header",
        "required": False,
        "description": "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.' + raw body>; several "
        "v1 values while a secret rotates.",
        "schema": {"type": "string"},
    },
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "Re-sends under the same key return the first request's id.",
        "schema": {"type": "string", "maxLength": 128},
    },
]


def openapi_document(oems: list[str]) -> dict[str, Any]:
    """The document, listing the OEM keys this deployment accepts."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Submissions pipeline webhook API",
            "version": "1",
            "description": "Signed triggers in; the outbound events are listed in "
            "x-webhook-events (schemas under contracts/webhooks-v1/).",
        },
        "components": {
            "securitySchemes": {
                "hmacSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Submissions-Signature",
                },
                "bearerToken": {"type": "http", "scheme": "bearer"},
            }
        },
        "security": [{"hmacSignature": []}, {"bearerToken": []}],
        "paths": {
            "/v1/oems/{oem}/run-now": {
                "post": {
                    "operationId": "runNow",
                    "summary": "Start one run of an OEM's nightly job now.",
                    "parameters": [
                        {
                            "name": "oem",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": oems},
                        },
                        *_SECURITY_PARAMETERS,
                    ],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "max_jobs": {"type": "integer", "minimum": 0},
                                        "priority_order": {
                                            "type": "string",
                                            "enum": ["priority", "redaction_sensitive_first"],
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": _responses(
                        {
                            "404": "unknown_oem: no such OEM is registered.",
                            "422": "invalid_parameters.",
                        }
                    ),
                }
            },
            "/v1/cases": {
                "post": {
                    "operationId": "pushCase",
                    "summary": "Push a new or changed case into the CRM intake (validated like "
                    "a polled one; an invalid case is written back as invalid_data).",
                    "parameters": _SECURITY_PARAMETERS,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["case_id", "oem"],
                                    "properties": {
                                        "case_id": {"type": "string"},
                                        "oem": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": _responses(
                        {
                            "422": "invalid_case: the CRM cannot file it (no case_id or oem).",
                            "501": "not_supported: the configured CRM takes no pushed cases.",
                        }
                    ),
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "security": [],
                    "responses": {"200": {"description": "This document."}},
                }
            },
        },
        "x-webhook-events": EVENT_TYPES,
    }
