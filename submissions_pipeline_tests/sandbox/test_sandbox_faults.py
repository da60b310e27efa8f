"""Each fault knob of the sandbox portals does what the adapters and soak tests rely on."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, date, datetime, timedelta

import pytest
from playwright.sync_api import expect

from sandbox import SandboxServer
from sandbox.accounts import DealerCredentials, credentials
from sandbox.ledger import LedgerEntry
from sandbox.server import SandboxError

pytestmark = pytest.mark.browser

OEMS = ["northwind", "aurora", "kestrel"]
VIN = "2KTZZ81F47H512345"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(url: str, body: dict | None = None) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with NO_PROXY.open(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_error_rate_answers_503_but_never_on_the_admin_api(sandbox, portal_flow):
    for oem in OEMS:
        sandbox.configure(oem, error_rate=1.0)
        flow = portal_flow(oem)

        response = flow.goto(flow.spec.login_path)

        assert response.status == 503
        heading = flow.page.get_by_role("heading", name="503 Service Temporarily Unavailable")
        expect(heading).to_be_visible()
        status, body = http(sandbox.admin_url(oem) + "/config")
        assert status == 200 and json.loads(body)["error_rate"] == 1.0


def test_latency_is_added_to_every_page_request(sandbox, portal_flow):
    sandbox.configure("northwind", latency_ms=600)
    flow = portal_flow("northwind")

    started = time.monotonic()
    flow.goto(flow.spec.login_path)
    elapsed = time.monotonic() - started
    admin_started = time.monotonic()
    http(sandbox.admin_url("northwind") + "/config")

    assert elapsed >= 0.6
    assert time.monotonic() - admin_started < 0.6


def test_slow_search_takes_the_configured_time_while_the_server_stays_responsive(
    sandbox, portal_flow
):
    oem = "kestrel"
    sandbox.configure(oem, search_latency_s=1.5)
    flow = portal_flow(oem)
    flow.login()

    started = time.monotonic()
    flow.search(VIN, "CASE-SLOW")
    other_started = time.monotonic()
    status, _ = http(flow.base + flow.spec.login_path)
    other_elapsed = time.monotonic() - other_started
    flow.button(flow.spec.start_button).wait_for()

    assert status == 200 and other_elapsed < 1.0
    assert time.monotonic() - started >= 1.5


def test_reject_login_fails_every_login_with_the_portals_error_message(sandbox, portal_flow):
    for oem in OEMS:
        sandbox.configure(oem, reject_login=True)
        flow = portal_flow(oem)

        flow.goto(flow.spec.login_path)
        flow.fill_login(credentials(oem, "D1001"))

        expect(flow.page.get_by_role("alert")).to_have_text(flow.spec.login_error)
        assert flow.spec.login_path in flow.page.url


def test_wrong_password_and_unknown_dealer_are_refused(sandbox, portal_flow):
    for oem in OEMS:
        flow = portal_flow(oem)
        creds = credentials(oem, "D1004")
        flow.goto(flow.spec.login_path)
        flow.fill_login(creds, password=creds.password + "x")
        expect(flow.page.get_by_role("alert")).to_have_text(flow.spec.login_error)

        stranger = DealerCredentials(oem, "D9999", "nobody@example.test", creds.password)
        flow.fill_login(stranger)
        expect(flow.page.get_by_role("alert")).to_have_text(flow.spec.login_error)


def test_dropped_response_records_the_submission_but_shows_no_reference(sandbox, portal_flow):
    oem = "kestrel"
    sandbox.configure(oem, drop_after_submit_rate=1.0)
    flow = portal_flow(oem)
    flow.login()
    flow.fill_claim(VIN, "CASE-DROPPED", flow_payload())

    with flow.page.expect_response(lambda r: r.request.method == "POST") as submitted:
        flow.submit()

    assert submitted.value.status == 504
    expect(flow.page.get_by_role("heading", name="504 Gateway Time-out")).to_be_visible()
    assert flow.reference_in_page() is None
    (entry,) = sandbox.ledger(oem)
    assert entry.case_id == "CASE-DROPPED" and entry.response_dropped
    assert re.fullmatch(flow.reference_re, entry.reference)
    # The way to reconcile: the lookup page shows the reference the browser never saw.
    assert entry.reference in flow.lookup("CASE-DROPPED")


def flow_payload() -> dict:
    return {
        "repair_date": (date.today() - timedelta(days=1)).isoformat(),
        "mileage": 1200,
        "complaint": "Brake pedal pulsates under braking",
        "cause": "Warped front rotors",
        "correction": "Replaced both front rotors",
        "labor_hours": 2.0,
        "part_number": "BR-2231",
    }


@pytest.mark.parametrize("oem", OEMS)
def test_v2_renames_the_ui_and_changes_the_reference_format(oem, sandbox, portal_flow):
    sandbox.configure(oem, ui_version="v2")
    flow = portal_flow(oem, version="v2")
    v1 = portal_flow(oem, version="v1").spec

    flow.goto(flow.spec.login_path)
    assert flow.page.locator('meta[name="portal-ui-version"]').get_attribute("content") == "v2"
    assert flow.button(v1.login_button).count() == 0
    flow.login()
    reference = flow.submit_case(VIN, "CASE-V2", flow_payload())

    assert re.fullmatch(flow.reference_re, reference)
    assert not re.search(v1_reference(oem), reference)
    (entry,) = sandbox.ledger(oem)
    assert entry.reference == reference and entry.ui_version == "v2"


def v1_reference(oem: str) -> str:
    return {"northwind": r"^NW-\d{4}", "aurora": r"^AUR-", "kestrel": r"^KT/"}[oem]


def test_v1_pages_say_v1_in_their_meta_tag(sandbox, portal_flow):
    for oem in OEMS:
        flow = portal_flow(oem)
        flow.goto(flow.spec.login_path)
        assert flow.page.locator('meta[name="portal-ui-version"]').get_attribute("content") == "v1"


def test_kestrel_session_expires_after_the_ttl_and_login_resumes_where_it_left(
    sandbox, portal_flow
):
    sandbox.configure("kestrel", session_ttl_s=1.5)
    flow = portal_flow("kestrel")
    flow.login()
    time.sleep(1.7)

    flow.goto(flow.spec.search_path)

    expect(flow.page.get_by_role("status")).to_have_text(
        "Your session has expired. Please log on again."
    )
    assert "/session/new" in flow.page.url and "expired=1" in flow.page.url
    flow.fill_login(credentials("kestrel", "D1001"))
    flow.page.wait_for_url(re.compile(r"/warranty/search$"))


def test_kestrel_warns_before_expiry_and_staying_logged_on_extends_the_session(
    sandbox, portal_flow
):
    sandbox.configure("kestrel", session_ttl_s=3.6)  # warning 1.2 s before expiry
    flow = portal_flow("kestrel")
    flow.login()

    expect(flow.dialog("session")).to_be_visible(timeout=4_000)
    with flow.page.expect_response(lambda r: r.url.endswith("/session/keepalive")) as kept:
        flow.dismiss("session")
    assert kept.value.status == 200
    time.sleep(1.4)  # past the original expiry, within the extended one
    flow.goto(flow.spec.search_path)

    assert flow.page.url.endswith("/warranty/search")


def test_aurora_asks_for_a_totp_code_and_refuses_a_wrong_one(sandbox, portal_flow):
    flow = portal_flow("aurora")
    creds = credentials("aurora", "D1005")
    flow.goto(flow.spec.login_path)
    flow.fill_login(creds)
    flow.page.wait_for_url(re.compile(r"/auth/verify"))
    wrong = f"{(int(creds.totp_code()) + 500_000) % 1_000_000:06d}"

    flow.field("Authentication code").fill(wrong)
    flow.button("Verify").click()
    expect(flow.page.get_by_test_id("otp-error")).to_have_text(flow.spec.extra["totp_error"])
    flow.goto("/home")  # not reachable before the second factor
    assert "/auth/verify" in flow.page.url

    flow.field("Authentication code").fill(creds.totp_code())
    flow.button("Verify").click()
    flow.page.wait_for_url(re.compile(r"/home$"))


def test_admin_api_updates_knobs_partially_rejects_unknown_ones_and_resets(sandbox):
    admin = sandbox.admin_url("aurora")

    status, body = http(admin + "/config", {"popup_rate": 0.25, "ui_version": "v2"})
    assert status == 200
    config = json.loads(body)
    assert (config["popup_rate"], config["ui_version"], config["error_rate"]) == (0.25, "v2", 0.0)
    assert http(admin + "/config", {"no_such_knob": 1})[0] == 400
    assert http(admin + "/config", {"error_rate": 2})[0] == 400

    status, body = http(admin + "/reset", {})
    assert status == 200 and json.loads(body)["ui_version"] == "v1"
    assert json.loads(http(admin + "/ledger")[1]) == []
    assert json.loads(http(admin + "/ledger/duplicates")[1]) == []


def test_concurrent_submissions_all_reach_the_ledger(sandbox):
    # The ledger is shared by the event loop and admin readers; hammer it from threads too.
    portal = sandbox.portal("northwind")

    def record(i: int) -> None:
        portal.ledger.record(
            LedgerEntry(
                oem="northwind",
                case_id=f"C{i % 50}",
                vin=VIN,
                dealer_id="D1001",
                reference=f"R{i}",
                received_at=datetime.now(UTC),
                payload={},
                ui_version="v1",
            )
        )

    threads = [threading.Thread(target=record, args=(i,)) for i in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(sandbox.ledger("northwind")) == 200
    assert {d.case_id: d.count for d in sandbox.duplicates("northwind")} == {
        f"C{i}": 4 for i in range(50)
    }


def test_the_sandbox_refuses_to_listen_beyond_loopback():
    with pytest.raises(SandboxError, match="loopback"):
        SandboxServer(host="0.0.0.0")


def test_a_taken_port_is_reported_not_ignored(sandbox_server):
    taken = sandbox_server.port("northwind")
    with pytest.raises(SandboxError, match="cannot bind"):
        SandboxServer({"northwind": taken}, oems=["northwind"]).start()


def test_heavy_pages_weigh_what_real_portals_do_and_call_a_slow_third_party(
    sandbox, portal_flow, page
):
    from sandbox.heavy import heavy_assets, third_party_requests

    sandbox.configure("northwind", heavy_pages=True, third_party_delay_ms=1500)
    flow = portal_flow("northwind")
    received: dict[str, int] = {}
    page.on("response", lambda r: received.update({r.url: len(r.body())}) if r.ok else None)
    before = third_party_requests()

    started = time.monotonic()
    flow.goto(flow.spec.login_path)  # waits for `load`, which the slow third party holds up
    loaded = time.monotonic() - started

    # The bundle ran before the page could be used, and every asset came with it.
    assert page.evaluate("window.portalApp.ready && window.portalApp.modules") == 6_500
    assert sum(received.values()) >= heavy_assets().total_bytes > 2_000_000
    assert any(url.endswith("/static/portal-sans.ttf") for url in received)
    assert page.locator("img[src='/static/hero.png']").evaluate("i => i.naturalWidth") == 480
    assert any(url.startswith("http://analytics.localhost:") for url in received)
    assert third_party_requests() == before + 1
    assert loaded >= 1.5
    flow.login()  # and the portal still works


def test_heavy_pages_are_off_by_default(sandbox, portal_flow, page):
    flow = portal_flow("northwind")
    flow.goto(flow.spec.login_path)
    assert page.evaluate("window.portalApp === undefined")
    assert page.locator("script[src], img").count() == 0
