"""Redaction: removing secrets from text and bytes before anything is logged or stored.

A long secret is replaced wherever it appears, in every encoding it can take (as typed, JSON-,
URL- or HTML-escaped). A short one (a password of a few characters, a 6-digit one-time code)
would blank out unrelated text that way, so it is replaced where it stands as a whole value: a
form field or query parameter, a JSON string, a header or cookie value, a whole word of free
text. Fields that hold secrets (password inputs, ``Authorization`` headers) are blanked
whatever their value, so a secret nobody told the redactor about is removed there too.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterable
from urllib.parse import quote, quote_plus

#: Secrets shorter than this are redacted only where they stand as a whole value or word.
SHORT_SECRET = 12

#: What a redacted value becomes.
MASK = "***"

#: Field, parameter, header and JSON key names whose values are secrets whatever they hold; the
#: evidence recorder adds the names of the password inputs it finds on a login page.
SECRET_FIELDS = frozenset(
    {"password", "passwd", "pwd", "passcode", "secret", "otp", "totp", "authorization"}
)

#: Leading bytes of images and videos: binary, where a short secret's bytes occur only by chance
#: and where replacing them (changing the length) would corrupt the file.
_MEDIA_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"\x1aE\xdf\xa3", b"RIFF")

# A whole value starts after a character that is not a letter or digit, or after an escape that
# ends in one (%3D, \u0022, \n); it ends before a character that is not a letter or digit.
_START = r"(?:(?<![A-Za-z0-9])|(?<=%[0-9A-Fa-f]{2})|(?<=\\u[0-9A-Fa-f]{4})|(?<=\\[nrtbf]))"
_END = r"(?![A-Za-z0-9])"
# A JSON string (one level of escaping).
_JSON_STRING = r'"(?:[^"\\]|\\.)*"'

#: A pattern and what its matches become.
_Rule = tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]


def secret_forms(secret: str) -> set[str]:
    """Every way `secret` shows up in stored text: as typed, JSON-escaped (ASCII or not, once
    or twice), URL-encoded (form or path style, either case of hex digits) and HTML-escaped."""
    in_json = json.dumps(secret)[1:-1]
    forms = {
        secret,
        in_json,
        json.dumps(in_json)[1:-1],  # a JSON document kept as a string in another one
        json.dumps(secret, ensure_ascii=False)[1:-1],
        quote_plus(secret),
        quote(secret, safe=""),
        html.escape(secret),
        html.escape(secret, quote=False),
    }
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in forms}
    return {f for f in forms if f}


class Redactor:
    """Redacts a fixed set of secrets and secret fields; build one per set and reuse it."""

    def __init__(self, secrets: Iterable[str], fields: Iterable[str] = ()):
        values = {s for s in secrets if s}
        self.fields = frozenset(f.lower() for f in fields if f) | SECRET_FIELDS
        long_forms = {f for s in values if len(s) >= SHORT_SECRET for f in secret_forms(s)}
        short_forms = {f for s in values if len(s) < SHORT_SECRET for f in secret_forms(s)}
        self._long_forms = tuple(long_forms)
        self._short_forms = tuple(short_forms)
        self._long = _alternation(long_forms)
        self._short = _alternation(short_forms, _START, _END)
        names = "|".join(re.escape(f) for f in sorted(self.fields, key=len, reverse=True))
        self._field_rules = _field_rules(names)

    def redact(self, text: str) -> str:
        """`text` with every secret value and every secret field's value masked."""
        if self._long is not None and any(f in text for f in self._long_forms):
            text = self._long.sub(MASK, text)
        lowered = text.lower()
        if any(name in lowered for name in self.fields):
            for pattern, replace in self._field_rules:
                text = pattern.sub(replace, text)
        if self._short is not None and any(f in text for f in self._short_forms):
            text = self._short.sub(MASK, text)
        return text

    def redact_bytes(self, data: bytes) -> bytes:
        """`redact` for raw bytes (archive members, request bodies). Bytes that are not UTF-8
        survive unchanged; images and videos only lose long secrets (see _MEDIA_MAGIC)."""
        if data.startswith(_MEDIA_MAGIC):
            if self._long is None:
                return data
            for form in sorted(self._long_forms, key=len, reverse=True):
                data = data.replace(form.encode(), MASK.encode())
            return data
        text = data.decode("utf-8", errors="surrogateescape")
        redacted = self.redact(text)
        return data if redacted == text else redacted.encode("utf-8", errors="surrogateescape")

    def finds(self, text: str) -> bool:
        """Whether `text` holds anything this redactor would mask."""
        return self.redact(text) != text


def _alternation(forms: set[str], start: str = "", end: str = "") -> re.Pattern[str] | None:
    if not forms:
        return None
    body = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    return re.compile(f"{start}(?:{body}){end}")


def _field_rules(names: str) -> list[_Rule]:
    """Rules masking the values of the fields the alternation `names` matches, in every
    structure where a value has a name."""
    n = f"(?i:{names})"
    return [
        # A form body, query string or cookie: name=value, up to the next separator.
        (
            re.compile(rf"((?<![A-Za-z0-9_.\-\[]){n}(?:=|%3[Dd]))[^&\s\"'<>;#,\\]*"),
            rf"\g<1>{MASK}",
        ),
        # A JSON member: "name": "value" (a number or literal is left alone).
        (re.compile(rf'("{n}"\s*:\s*){_JSON_STRING}'), rf'\g<1>"{MASK}"'),
        # A name/value pair as HAR writes parameters, headers and cookies.
        (
            re.compile(rf'("name"\s*:\s*"{n}"\s*,\s*"value"\s*:\s*){_JSON_STRING}'),
            rf'\g<1>"{MASK}"',
        ),
        # A header line: Name: value.
        (re.compile(rf"(?m)^({n}[ \t]*:[ \t]*)[^\r\n]*"), rf"\g<1>{MASK}"),
        *_PASSWORD_INPUT_RULES,
    ]


def _password_input_rules() -> list[_Rule]:
    """Rules for the value of a password input however it was captured: an HTML element, or
    the attribute object of a trace's DOM snapshot."""
    element = re.compile(r"<input\b[^>]*\btype\s*=\s*[\"']?password\b[^>]*>", re.IGNORECASE)
    attrs = re.compile(r'\{[^{}]*"type"\s*:\s*"password"[^{}]*\}', re.IGNORECASE)
    html_value = re.compile(r"""(\bvalue\s*=\s*)("[^"]*"|'[^']*'|[^\s>]+)""", re.IGNORECASE)
    json_value = re.compile(r'("(?:value|__playwright_value_)"\s*:\s*)' + _JSON_STRING)

    def in_element(m: re.Match[str]) -> str:
        return html_value.sub(rf'\g<1>"{MASK}"', m.group(0))

    def in_attrs(m: re.Match[str]) -> str:
        return json_value.sub(rf'\g<1>"{MASK}"', m.group(0))

    return [(element, in_element), (attrs, in_attrs)]


_PASSWORD_INPUT_RULES = _password_input_rules()
