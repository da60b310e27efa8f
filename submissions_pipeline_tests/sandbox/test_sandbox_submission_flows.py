"""A dealer can submit a claim on every sandbox portal, and look it up afterwards."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from sandbox import REFERENCE_PATTERNS
from sandbox.accounts import credentials

pytestmark = pytest.mark.browser

OEMS = ["northwind", "aurora", "kestrel"]
VIN = "1NWAB23C45D678901"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.mark.parametrize("oem", OEMS)
def test_v1_submission_is_recorded_with_the_reference_the_dealer_sees_and_can_look_up(
    oem, sandbox, portal_flow, make_payload
):
    flow = portal_flow(oem)
    payload = make_payload()
    flow.login("D1002")

    reference = flow.submit_case(VIN, f"CASE-{oem}-1", payload)

    assert re.fullmatch(flow.reference_re, reference)
    (entry,) = sandbox.ledger(oem)
    assert entry.reference == reference
    assert (entry.case_id, entry.vin, entry.dealer_id) == (f"CASE-{oem}-1", VIN, "D1002")
    assert entry.ui_version == "v1"
    assert not entry.response_dropped
    assert {k: entry.payload[k] for k in payload} == payload
    if oem == "kestrel":
        assert entry.payload["document"]["size"] > 0
    # The lookup page is how an ambiguous submit is reconciled: by case id or by VIN.
    assert reference in flow.lookup(f"CASE-{oem}-1")
    assert reference in flow.lookup(VIN.lower())
    assert reference not in flow.lookup("CASE-NEVER-SENT")
    # The admin ledger carries the same entry, and never the dealer's secrets.
    with NO_PROXY.open(sandbox.admin_url(oem) + "/ledger", timeout=5) as response:
        body = response.read().decode()
    assert json.loads(body)[0]["reference"] == reference
    with NO_PROXY.open(sandbox.admin_url(oem) + "/ledger?case_id=CASE-OTHER", timeout=5) as r:
        assert json.loads(r.read()) == []
    creds = credentials(oem, "D1002")
    assert creds.password not in body
    assert creds.totp_secret is None or creds.totp_secret not in body


def test_the_same_case_submitted_twice_is_reported_as_a_duplicate(sandbox, portal_flow):
    flow = portal_flow("northwind")
    flow.login()
    first = flow.submit_case(VIN, "CASE-TWICE")
    second = flow.submit_case(VIN, "CASE-TWICE")
    sandbox.portal("northwind").ledger.record(
        sandbox.ledger("northwind")[0].model_copy(update={"case_id": "CASE-ONCE"})
    )

    with NO_PROXY.open(sandbox.admin_url("northwind") + "/ledger/duplicates", timeout=5) as r:
        duplicates = json.loads(r.read())

    assert duplicates == [{"case_id": "CASE-TWICE", "count": 2, "references": [first, second]}]
    assert first != second


def test_the_package_exports_the_documented_reference_formats(documented_references):
    for oem, versions in documented_references.items():
        for version, pattern in versions.items():
            assert REFERENCE_PATTERNS[oem][version] == f"^{pattern}$"
