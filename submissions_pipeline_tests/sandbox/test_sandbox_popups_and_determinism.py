"""Pop-ups really block the page until dismissed, and every random event replays under a seed."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from sandbox.faults import FaultDice

OEMS = ["northwind", "aurora", "kestrel"]
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.mark.browser
@pytest.mark.parametrize("oem", OEMS)
def test_each_popup_blocks_clicks_until_its_dismiss_button_is_pressed(oem, sandbox, portal_flow):
    sandbox.configure(oem, popup_rate=1.0)
    flow = portal_flow(oem)
    flow.goto(flow.spec.login_path)

    expect(flow.dialog("cookie")).to_be_visible()
    with pytest.raises(PlaywrightTimeoutError, match="intercepts pointer events"):
        flow.button(flow.spec.login_button).click(timeout=800)
    flow.dismiss("cookie")
    expect(flow.dialog("cookie")).to_be_hidden()

    flow.login()  # consent is remembered: no cookie banner any more
    # One pop-up at a time: the survey first, the session dialog once the survey is gone.
    expect(flow.dialog("survey")).to_be_visible()
    expect(flow.dialog("session")).to_be_hidden()
    flow.dismiss("survey")
    expect(flow.dialog("session")).to_be_visible()
    flow.dismiss("session")
    expect(flow.page.get_by_role("dialog")).to_have_count(0)
    sandbox.configure(oem, popup_rate=0.0)
    flow.page.get_by_role("navigation").get_by_role("link").nth(1).click()
    flow.page.wait_for_load_state()


@pytest.mark.browser
def test_a_driver_with_locator_handlers_submits_through_constant_popups(
    sandbox, portal_flow, make_payload
):
    sandbox.configure("northwind", popup_rate=1.0, popup_delay_ms=150)
    flow = portal_flow("northwind")
    for kind in ("cookie", "survey", "session"):
        button = flow.spec.popups[kind][1]
        flow.page.add_locator_handler(
            flow.dialog(kind), lambda dialog, b=button: dialog.get_by_role("button", name=b).click()
        )

    flow.login()
    reference = flow.submit_case("1NWAB23C45D678901", "CASE-POPUPS", make_payload())

    assert sandbox.ledger("northwind")[0].reference == reference


@pytest.mark.browser
def test_a_popup_delay_makes_the_popup_appear_after_the_page_is_ready(sandbox, portal_flow):
    sandbox.configure("aurora", popup_rate=1.0, popup_delay_ms=1500, popup_kinds=["cookie"])
    flow = portal_flow("aurora")

    flow.goto(flow.spec.login_path)

    assert flow.dialog("cookie").is_hidden()
    expect(flow.dialog("cookie")).to_be_visible(timeout=3_000)


def _login_page_outcomes(sandbox, oem: str, count: int, interleave: bool = False) -> list:
    base = sandbox.base_url(oem)
    path = sandbox.portal(oem).paths["login"]
    outcomes = []
    for _ in range(count):
        if interleave:  # other traffic must not shift this page's outcomes
            _get(base + "/nowhere")
        status, body = _get(base + path)
        outcomes.append((status, 'data-popup="cookie"' in body))
    return outcomes


def _get(url: str) -> tuple[int, str]:
    try:
        with NO_PROXY.open(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.parametrize("oem", OEMS)
def test_seeded_faults_and_popups_replay_identically_whatever_runs_beside_them(oem, sandbox):
    knobs = {"seed": 7, "error_rate": 0.3, "popup_rate": 0.5}
    sandbox.configure(oem, **knobs)
    first = _login_page_outcomes(sandbox, oem, 30)
    sandbox.reset(oem)
    sandbox.configure(oem, **knobs)
    replay = _login_page_outcomes(sandbox, oem, 30, interleave=True)
    sandbox.reset(oem)
    sandbox.configure(oem, **{**knobs, "seed": 8})
    other_seed = _login_page_outcomes(sandbox, oem, 30)

    assert first == replay
    assert first != other_seed
    assert {status for status, _ in first} == {200, 503}
    assert {popup for status, popup in first if status == 200} == {True, False}


def test_dice_depend_on_seed_kind_key_and_that_keys_own_counter_only():
    dice, other = FaultDice("kestrel"), FaultDice("kestrel")
    rolls = [dice.roll(3, "drop_after_submit", "CASE-1") for _ in range(5)]
    for _ in range(7):
        other.roll(3, "drop_after_submit", "CASE-2")
    assert [other.roll(3, "drop_after_submit", "CASE-1") for _ in range(5)] == rolls
    assert FaultDice("aurora").roll(3, "drop_after_submit", "CASE-1") != rolls[0]
    assert dice.happens(3, "x", "k", 0.0) is False
    assert dice.happens(3, "x", "k", 1.0) is True
