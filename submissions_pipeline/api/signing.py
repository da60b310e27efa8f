"""HMAC-SHA256 signatures over a timestamp and a raw body, both ways (inbound and outbound).

The header reads ``Submissions-Signature: t=<unix seconds>,v1=<hex>``; a sender rotating its
secret may send several ``v1=`` values. The signed bytes are ``<t>.`` followed by the raw
body, so neither the time nor a byte of the body can change without breaking the signature.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

SIGNATURE_HEADER = "Submissions-Signature"
#: How far a signature's timestamp may be from our clock (either way).
TOLERANCE_S = 300


class SignatureError(Exception):
    """A signature that does not authenticate the request; `reason` is safe to show."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets: str | Iterable[str], timestamp: int, body: bytes) -> str:
    """The header value signing `body` at `timestamp` (one v1 per secret)."""
    if isinstance(secrets, str):
        secrets = [secrets]
    return ",".join([f"t={timestamp}", *(f"v1={sign(s, timestamp, body)}" for s in secrets)])


def parse_header(value: str | None) -> tuple[int, list[str]]:
    """(timestamp, signatures) of a header value; SignatureError when absent or malformed."""
    if not value:
        raise SignatureError("missing signature")
    timestamp, signatures = None, []
    for part in value.split(","):
        key, _, item = part.strip().partition("=")
        if key == "t" and item.isdigit():
            timestamp = int(item)
        elif key == "v1" and item:
            signatures.append(item)
    if timestamp is None or not signatures:
        raise SignatureError("malformed signature header")
    return timestamp, signatures


def verify(
    header: str | None,
    body: bytes,
    secrets: Iterable[str],
    now: float,
    tolerance_s: float = TOLERANCE_S,
) -> tuple[int, str]:
    """Check a signature header against any of `secrets`; (timestamp, matching signature).

    The matching signature is unique to this timestamp and body: it serves as the nonce that
    refuses a replay. Compared in constant time.
    """
    timestamp, signatures = parse_header(header)
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError("timestamp outside the tolerance")
    for secret in secrets:
        expected = sign(secret, timestamp, body)
        for candidate in signatures:
            if hmac.compare_digest(expected, candidate):
                return timestamp, expected
    raise SignatureError("signature does not match")
