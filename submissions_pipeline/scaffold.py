"""`submissions new-oem`: the files of a new OEM adapter, written from a probed login page.

The selector file it writes loads (the schema accepts it) and its login part comes from the
portal itself; everything after login is marked TODO, for the check-adapter loop to fill in.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

#: A locator a person must replace: check-adapter reports it missing with the page's closest.
TODO = "TODO"


class ScaffoldError(ValueError):
    """The OEM cannot be scaffolded here (a bad key, an OEM that exists already)."""


def class_name(key: str) -> str:
    return "".join(p.capitalize() for p in key.split("_")) + "Adapter"


def selector_skeleton(key: str, login_path: str, login: dict[str, Any]) -> dict[str, Any]:
    """A v1 selector file: the probed login, TODO locators for the rest."""
    return {
        "oem": key,
        "ui_version": "v1",
        "reference_regex": "TODO-\\d+",
        "paths": {"login": login_path, "form": "/"},
        "login": login,
        "logged_in": {"role": "link", "name": "Sign out"},
        "steps": [
            {
                "fields": {
                    "vin": {"label": f"{TODO} VIN"},
                    "mileage": {"label": f"{TODO} Mileage"},
                }
            }
        ],
        "review": {"submit": {"role": "button", "name": f"{TODO} Submit"}},
        "confirmation_reference": {"text": f"{TODO} reference"},
    }


def oem_toml(display_name: str) -> str:
    return (
        f'# {display_name}: the OEM\'s own settings (see the README, "Adding a real portal").\n'
        f'display_name = "{display_name}"\n\n'
        "[schedule]\n"
        'nightly_cron = "0 2 * * *"        # the nightly batch, off-hours for the portal\n'
        'timezone = "UTC"\n'
        'business_hours_start = "07:00"    # new cases cleared by this local time\n'
    )


def adapter_module(key: str, display_name: str) -> str:
    return (
        f'"""{display_name}: selector data plus a subclass naming the OEM."""\n\n'
        "from adapters.base import TemplatedPortalAdapter\n\n\n"
        f"class {class_name(key)}(TemplatedPortalAdapter):\n"
        f'    """Everything {display_name} needs is in its selector files."""\n\n'
        f'    oem = "{key}"\n'
    )


def write_scaffold(
    adapters_dir: Path, key: str, display_name: str, selectors: dict[str, Any]
) -> list[Path]:
    """Create `<adapters_dir>/<key>/` and add the registry entry; the files written."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", key):
        raise ScaffoldError(f"OEM key {key!r}: lowercase letters, digits and _ only")
    folder = adapters_dir / key
    registry = adapters_dir / "registry.toml"
    text = registry.read_text() if registry.exists() else ""
    if folder.exists() or re.search(rf"^\[{key}\]", text, re.M):
        raise ScaffoldError(f"{key} exists already in {adapters_dir}")
    (folder / "selectors").mkdir(parents=True)
    files = {
        folder / "__init__.py": adapter_module(key, display_name),
        folder / "oem.toml": oem_toml(display_name),
        folder / "selectors" / "v1.json": json.dumps(selectors, indent=2) + "\n",
    }
    for path, content in files.items():
        path.write_text(content)
    entry = f'\n[{key}]\nadapter = "{adapters_dir.name}.{key}:{class_name(key)}"\n'
    registry.write_text(text.rstrip("\n") + "\n" + entry if text else entry.lstrip("\n"))
    return [*files, registry]
