"""A trace archive loses the bodies of credential-bearing requests, whoever knows the secret."""

from __future__ import annotations

import json
import zipfile

from submissions_pipeline.redaction import Redactor
from submissions_pipeline.runner.trace_archive import request_key, scrub_trace_archive


def entry(method: str, url: str, body: str, blob: str) -> str:
    params = [dict(zip(("name", "value"), p.split("="), strict=True)) for p in body.split("&")]
    post = {"mimeType": "application/x-www-form-urlencoded", "params": params, "_file": blob}
    request = {"method": method, "url": url, "postData": post, "headers": []}
    return json.dumps({"type": "resource-snapshot", "snapshot": {"request": request}})


def write_archive(path, members: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, text in members.items():
            z.writestr(name, text)


def read_archive(path) -> dict[str, str]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n).decode() for n in z.namelist()}


def test_a_noted_login_request_loses_its_body_even_when_no_secret_is_known(tmp_path):
    login_body = "dealer=D-1001&passphrase=unknown-to-the-redactor"
    claim_body = "vin=1HGCM82633A004352&mileage=10001"
    log = "\n".join(
        [
            entry("POST", "http://portal.test/login", login_body, "resources/a.dat"),
            entry("POST", "http://portal.test/claims/new", claim_body, "resources/b.dat"),
        ]
    )
    path = tmp_path / "trace-2.zip"
    write_archive(
        path,
        {"trace.network": log + "\n", "resources/a.dat": login_body, "resources/b.dat": claim_body},
    )
    dropped = scrub_trace_archive(
        path, Redactor([]), {request_key("post", "http://portal.test/login#top")}
    )
    members = read_archive(path)
    assert dropped == 1 and "resources/a.dat" not in members
    assert members["resources/b.dat"] == claim_body
    assert "unknown-to-the-redactor" not in "".join(members.values())
    requests = [
        json.loads(x)["snapshot"]["request"] for x in members["trace.network"].splitlines() if x
    ]
    assert "postData" not in requests[0] and requests[1]["postData"]["_file"] == "resources/b.dat"


def test_a_body_holding_a_secret_or_a_secret_field_is_dropped_unnoted(tmp_path):
    log = "\n".join(
        [
            entry("POST", "http://portal.test/a", "dealer=D-1001&code=Qz7%21", "resources/a.dat"),
            entry("POST", "http://portal.test/b", "user=x&pwd=anything", "resources/b.dat"),
            entry("POST", "http://portal.test/c", "vin=1HG&note=Qz7%21x", "resources/c.dat"),
        ]
    )
    path = tmp_path / "trace-3.zip"
    write_archive(
        path,
        {
            "trace.network": log,
            "resources/a.dat": "dealer=D-1001&code=Qz7%21",
            "resources/b.dat": "user=x&pwd=anything",
            "resources/c.dat": "vin=1HG&note=Qz7%21x",
        },
    )
    assert scrub_trace_archive(path, Redactor(["Qz7!"], ["pwd"])) == 2
    assert set(read_archive(path)) == {"trace.network", "resources/c.dat"}
