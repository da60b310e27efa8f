"""The OEM registry and per-OEM settings files: validated with the file and key named, and a
real OEM registered beside the sandbox ones leaves the demo and the code location working."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import adapters
from submissions_pipeline.oems import OemConfigError, OemRegistry

ROOT = Path(__file__).resolve().parents[1]

ACME_ADAPTER = '''"""Acme Motors: a real portal, no sandbox behind it."""

from adapters.base import TemplatedPortalAdapter


class AcmeAdapter(TemplatedPortalAdapter):
    oem = "acme"
'''


def copy_of_the_adapters(tmp_path: Path) -> Path:
    """The repository's adapters folder, copied so a test can change it."""
    folder = tmp_path / "adapters"
    shutil.copytree(adapters.FOLDER, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def register_acme(folder: Path) -> None:
    """A fourth OEM with its own folder and no sandbox account."""
    acme = folder / "acme"
    (acme / "selectors").mkdir(parents=True)
    (acme / "__init__.py").write_text(ACME_ADAPTER)
    (acme / "oem.toml").write_text(
        'display_name = "Acme Motors"\n[schedule]\nnightly_cron = "15 4 * * *"\n'
        'timezone = "Asia/Tokyo"\n'
    )
    selectors = json.loads((folder / "northwind" / "selectors" / "v1.json").read_text())
    selectors["oem"] = "acme"
    (acme / "selectors" / "v1.json").write_text(json.dumps(selectors))
    with (folder / "registry.toml").open("a") as registry:
        registry.write('\n[acme]\nadapter = "adapters.acme:AcmeAdapter"\n')


def test_the_repository_registers_the_three_sandbox_oems_with_valid_settings():
    registry = OemRegistry.load(adapters.FOLDER)
    registry.check()
    assert registry.oem_keys() == registry.sandbox_oem_keys() == ["aurora", "kestrel", "northwind"]
    assert registry.settings("aurora").display_name == "Aurora Automotive"
    assert registry.load_adapter("kestrel").display_name == "Kestrel Trucks"


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        (
            "northwind/oem.toml",
            'display_name = "N"\nnightly_crons = "0 1 * * *"\n',
            "unknown key 'nightly_crons'",
        ),
        ("northwind/oem.toml", '[schedule]\ntimezone = "UTC"\n', "missing key 'display_name'"),
        (
            "northwind/oem.toml",
            'display_name = "N"\n[schedule]\ntimezon = "UTC"\n',
            "unknown key 'schedule.timezon'",
        ),
        (
            "northwind/oem.toml",
            'display_name = "N"\n[schedule]\ntimezone = "Mars/Base"\n',
            "schedule.timezone",
        ),
        (
            "northwind/oem.toml",
            'display_name = "N"\n[schedule]\nnightly_cron = "at night"\n',
            "schedule.nightly_cron",
        ),
        (
            "northwind/oem.toml",
            'display_name = "N"\n[browser]\nblock_hosts = ["http://ads.example.com/x"]\n',
            "browser.block_hosts",
        ),
        (
            "registry.toml",
            '[northwind]\nadapter = "adapters.northwind:NorthwindAdapter"\nsandbx = true\n',
            "unknown key 'sandbx'",
        ),
    ],
)
def test_a_wrong_settings_file_fails_naming_the_file_and_the_key(
    tmp_path: Path, file: str, content: str, message: str
):
    folder = copy_of_the_adapters(tmp_path)
    (folder / file).write_text(content)
    with pytest.raises(OemConfigError) as raised:
        OemRegistry.load(folder).check()
    assert str(folder / file) in str(raised.value) or str(folder / "registry.toml") in str(
        raised.value
    )
    assert message in str(raised.value)


def test_an_adapter_registered_under_another_oems_key_is_refused(tmp_path: Path):
    folder = copy_of_the_adapters(tmp_path)
    registry = (folder / "registry.toml").read_text()
    (folder / "registry.toml").write_text(
        registry.replace('"adapters.aurora:AuroraAdapter"', '"adapters.kestrel:KestrelAdapter"')
    )
    with pytest.raises(ValueError, match="KestrelAdapter drives 'kestrel'"):
        OemRegistry.load(folder).load_adapter("aurora")


def test_a_real_oem_beside_the_sandbox_ones_leaves_the_demo_and_the_definitions_working(
    tmp_path: Path,
):
    folder = copy_of_the_adapters(tmp_path)
    register_acme(folder)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "SUBMISSIONS_ADAPTERS_DIR": str(folder),
        "SUBMISSIONS_HOME": str(tmp_path / "var"),
        "DAGSTER_HOME": str(tmp_path / "var" / "dagster"),
    }
    for unset in ("SUBMISSIONS_DB_URL", "SUBMISSIONS_PORTAL_URLS", "SUBMISSIONS_CREDENTIALS_FILE"):
        env.pop(unset, None)
    (tmp_path / "var" / "dagster").mkdir(parents=True)
    bin_dir = Path(sys.executable).parent

    listed = subprocess.run(
        [str(bin_dir / "dagster"), "definitions", "validate", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    schedules = subprocess.run(
        [str(bin_dir / "dagster"), "schedule", "list", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert "nightly_acme" in schedules.stdout, schedules.stdout + schedules.stderr

    demo = subprocess.run(
        [str(bin_dir / "submissions"), "run", "--oem", "northwind", "--per-oem", "6"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "northwind  SUCCESS" in demo.stdout
    assert "acme" not in demo.stdout

    refused = subprocess.run(
        [str(bin_dir / "submissions"), "run", "--oem", "acme"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert refused.returncode != 0
    assert "not sandbox-backed" in refused.stdout + refused.stderr
