"""The scrubber: short secrets leave every position a request can hold them, in every encoding,
without blanking unrelated values; secret fields are masked whatever they hold."""

from __future__ import annotations

import html
import json
from urllib.parse import quote, quote_plus

import pytest

from submissions_pipeline.credentials import redact, redact_bytes
from submissions_pipeline.redaction import MASK, SHORT_SECRET, Redactor
from submissions_pipeline_tests.factories import secret_encodings

#: 4, 6 and 8 characters; a one-time code; characters that change under every encoding.
SHORT = {
    "4-chars": "Qz7!",
    "6-digit-code": "482913",
    "6-chars": "r#4K&9",
    "6-chars-quote": 'k"8<zX',
    "8-chars": "m&N3=x+2",
    "8-chars-space": "Hp9 t+Q~",
}
LONG = 'sbx-nw-3qT&v=Xk+9%Lm"Zr<b>/pQ wE!9'

#: Text around the secret that must survive redaction (nothing else is blanked).
NEIGHBOUR = "D-1001"


def form_bodies(s: str) -> list[str]:
    """A form body or query string with the secret first, in the middle, last and alone, under
    a field name that says nothing (so only its value can give it away)."""
    out = []
    for v in (quote_plus(s), quote(s, safe="")):
        out += [
            f"code={v}&dealer={NEIGHBOUR}&next=%2Fhome",
            f"dealer={NEIGHBOUR}&code={v}&next=%2Fhome",
            f"dealer={NEIGHBOUR}&next=%2Fhome&code={v}",
            f"dealer={NEIGHBOUR}&code={v}",
        ]
    return out


def query_strings(s: str) -> list[str]:
    urls = []
    for v in (quote_plus(s), quote(s, safe="")):
        urls += [
            f"https://portal.test/login?code={v}&dealer={NEIGHBOUR}",
            f"https://portal.test/login?dealer={NEIGHBOUR}&code={v}",
            f"https://portal.test/login?dealer={NEIGHBOUR}&code={v}#top",
            f"/{NEIGHBOUR}/login?code={v}",
        ]
    # As a trace stores it: the URL inside a JSON event.
    return urls + [json.dumps({"url": u, "dealer": NEIGHBOUR}) for u in urls]


def json_bodies(s: str) -> list[str]:
    out = []
    for ascii_only in (True, False):
        out += [
            json.dumps(v, ensure_ascii=ascii_only)
            for v in (
                {"code": s, "dealer": NEIGHBOUR},
                {"dealer": NEIGHBOUR, "code": s},
                {"dealer": NEIGHBOUR, "auth": {"code": s, "remember": True}},
                [s, NEIGHBOUR],
                {"dealer": NEIGHBOUR, "text": "line one\n" + s},
                # A JSON body kept as a string inside a JSON event (a trace's post data).
                {"dealer": NEIGHBOUR, "postData": json.dumps({"dealer": NEIGHBOUR, "code": s})},
            )
        ]
    return out


def headers(s: str) -> list[str]:
    return [
        f"X-Dealer-Code: {s}\r\nX-Dealer: {NEIGHBOUR}\r\n",
        f"X-Dealer: {NEIGHBOUR}\r\nX-Dealer-Code: {s}",
        f"Cookie: dealer={NEIGHBOUR}; code={quote(s, safe='')}; lang=en",
        f"Cookie: code={quote(s, safe='')}; dealer={NEIGHBOUR}",
        json.dumps(
            {
                "headers": [
                    {"name": "X-Dealer-Code", "value": s},
                    {"name": "X-Dealer", "value": NEIGHBOUR},
                ],
                "cookies": [{"name": "code", "value": quote(s, safe="")}],
            }
        ),
    ]


def markup_and_prose(s: str) -> list[str]:
    return [
        f'<input name="code" value="{html.escape(s)}"><b>{NEIGHBOUR}</b>',
        f"<p>{html.escape(s)}</p><p>{NEIGHBOUR}</p>",
        f"dealer {NEIGHBOUR} typed {s} at the prompt",
        f"{s}\n{NEIGHBOUR}",
    ]


POSITIONS = {
    "form body": form_bodies,
    "query string": query_strings,
    "JSON body": json_bodies,
    "header": headers,
    "markup and prose": markup_and_prose,
}


@pytest.mark.parametrize("where", POSITIONS)
@pytest.mark.parametrize("secret", SHORT.values(), ids=SHORT.keys())
def test_a_short_secret_leaves_every_position_in_every_encoding(secret, where):
    assert len(secret) < SHORT_SECRET
    for text in POSITIONS[where](secret):
        out = redact(text, [secret])
        left = [f for f in secret_encodings(secret) if f in out]
        assert left == [], f"{left} left in {out!r} (from {text!r})"
        assert NEIGHBOUR in out, f"{out!r}: more than the secret was blanked"
        assert MASK in out


def test_the_reported_leak_a_password_ending_a_login_body():
    body = "dealer=D-1001&secret=pw-1001"
    assert redact(body, ["pw-1001"], fields=[]) == "dealer=D-1001&secret=***"
    assert redact("dealer=D-1001&login=pw-1001", ["pw-1001"]) == "dealer=D-1001&login=***"
    assert redact_bytes(body.encode(), ["pw-1001"]) == b"dealer=D-1001&secret=***"


@pytest.mark.parametrize("where", POSITIONS)
def test_a_long_secret_is_masked_everywhere_even_inside_a_word(where):
    for text in POSITIONS[where](LONG):
        out = redact(text, [LONG])
        assert [f for f in secret_encodings(LONG) if f in out] == []
        assert NEIGHBOUR in out
    assert redact(f"x{LONG}y", [LONG]) == f"x{MASK}y"


def test_a_one_time_code_does_not_blank_unrelated_numbers():
    code = "482913"
    kept = (
        "mileage 4829130 km; VIN 1HG482913CM004352; ts 1764482913123; "
        "ref NW482913; total 1482913; part IGN482913X; "
        '{"monotonicTime":1482913.5,"wallTime":17644829130}'
    )
    assert redact(kept, [code]) == kept
    assert redact(f"code {code}.", [code]) == f"code {MASK}."
    assert redact(f'"otpValue":"{code}"', [code]) == f'"otpValue":"{MASK}"'


def test_a_password_field_is_masked_whatever_its_value():
    fields = ["pwd", "dealer_secret"]
    r = Redactor([], fields)
    assert r.redact("user_id=KT1001OPS&pwd=unknown%21&next=") == "user_id=KT1001OPS&pwd=***&next="
    assert r.redact("user_id=KT1001OPS&pwd=unknown") == "user_id=KT1001OPS&pwd=***"
    assert r.redact("/session/new?PWD=abc&x=1") == "/session/new?PWD=***&x=1"
    assert r.redact('{"dealer_secret": "a\\"b", "n": 1}') == '{"dealer_secret": "***", "n": 1}'
    har = '{"params":[{"name":"user_id","value":"KT1"},{"name":"pwd","value":"hunter2"}]}'
    assert "hunter2" not in r.redact(har) and '"KT1"' in r.redact(har)
    # A trace's DOM snapshot of a filled password input, and the HTML of one.
    snap = '["INPUT",{"type":"password","name":"x","__playwright_value_":"hunter2"}]'
    assert "hunter2" not in r.redact(snap)
    page = '<input type="password" name="x" value="hunter2"><input name="vin" value="1HG">'
    assert "hunter2" not in r.redact(page) and 'value="1HG"' in r.redact(page)
    # Always secret: passwords and one-time codes by their usual names, authorization headers.
    assert Redactor([]).redact("a=1&password=x&otp=123456") == "a=1&password=***&otp=***"
    assert Redactor([]).redact("Authorization: Basic dXNlcjpwYXNz") == "Authorization: ***"
    # A name that merely contains a secret field's name is not one.
    assert Redactor([]).redact("typed_password_hint=blue") == "typed_password_hint=blue"


def test_bytes_keep_what_is_not_text_and_media_keep_their_length():
    blob = b"\xff\xfe pwd=Qz7%21&x=1 \x80"
    assert redact_bytes(blob, ["Qz7!"]) == b"\xff\xfe pwd=***&x=1 \x80"
    jpeg = b"\xff\xd8\xff\xe0 Qz7! " + LONG.encode()
    assert redact_bytes(jpeg, ["Qz7!", LONG]) == b"\xff\xd8\xff\xe0 Qz7! ***"
