"""Probe a portal's login page for `submissions new-oem`: where it is, its labelled fields and
its buttons, as locator specs a selector file can start from."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from pydantic import BaseModel, Field

from submissions_pipeline.runner.browser import BrowserWorker
from submissions_pipeline.runner.config import BrowserSettings, EvidenceSettings

#: Every visible input with the name a person would use for it, and every button.
_FORM_JS = """() => {
  const visible = (e) => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
  const name = (e) => {
    const label = e.labels && e.labels[0] ? e.labels[0].innerText : '';
    return (label || e.getAttribute('aria-label') || '').replace(/\\s+/g, ' ').trim();
  };
  const inputs = [...document.querySelectorAll('input, select, textarea')]
    .filter(e => visible(e) && !['hidden', 'submit', 'button'].includes(e.type))
    .map(e => ({type: e.type || 'text', label: name(e), placeholder: e.placeholder || ''}));
  const buttons = [...document.querySelectorAll(
      'button, input[type=submit], input[type=button], [role=button]')]
    .filter(visible)
    .map(e => (e.innerText || e.value || e.getAttribute('aria-label') || '').trim())
    .filter(t => t);
  return {inputs, buttons};
}"""


class LoginProbe(BaseModel):
    """What the login page offers."""

    url: str
    login_path: str
    fields: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="credential key -> locator spec"
    )
    submit: dict[str, str] | None = None
    unmatched: list[dict[str, str]] = Field(default_factory=list)
    buttons: list[str] = Field(default_factory=list)
    aria_snapshot: str = ""


def _spec(field: dict[str, str]) -> dict[str, str]:
    if field["label"]:
        return {"label": field["label"]}
    return {"placeholder": field["placeholder"]} if field["placeholder"] else {}


async def probe_login(url: str, browser: BrowserSettings, home: Path) -> LoginProbe:
    """Open `url` (a portal redirects a stranger to its login) and read the login form."""
    settings = browser.model_copy(update={"prewarm": False})
    async with BrowserWorker(settings, EvidenceSettings(video="off"), home) as worker:
        jc = await worker.open_context(record_video=False)
        page = jc.page
        await page.goto(url, wait_until="domcontentloaded")
        found = await page.evaluate(_FORM_JS)
        snapshot = await page.locator("body").aria_snapshot()
        probe = LoginProbe(
            url=page.url,
            login_path=urlparse(page.url).path or "/",
            buttons=found["buttons"],
            aria_snapshot=snapshot,
        )
        await worker.close_context(jc)
    for field in found["inputs"]:
        spec = _spec(field)
        words = f"{field['label']} {field['placeholder']}".lower()
        if field["type"] == "password" and "password" not in probe.fields:
            key = "password"
        elif "dealer" in words and "dealer_id" not in probe.fields:
            key = "dealer_id"
        elif field["type"] in ("text", "email") and "username" not in probe.fields:
            key = "username"
        else:
            probe.unmatched.append(field)
            continue
        if spec:
            probe.fields[key] = spec
    sign_in = [b for b in probe.buttons if any(w in b.lower() for w in ("sign", "log", "continue"))]
    if sign_in or probe.buttons:
        probe.submit = {"role": "button", "name": (sign_in or probe.buttons)[0]}
    return probe
