"""The OEM registry: which OEMs exist, their adapter classes and their own settings.

The core reads it from the adapters folder (`SUBMISSIONS_ADAPTERS_DIR`, the repository's
`adapters/` by default) and never imports an adapter by name: `registry.toml` maps each OEM key
to its adapter class ("module:Class") and says whether a sandbox portal backs it, and
`<oem>/oem.toml` holds the OEM's settings. Adding an OEM is a folder and a registry entry; no
reinstall.
"""

from __future__ import annotations

import sys
import tomllib
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import Any

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from submissions_pipeline.domain.oem import OemSettings
from submissions_pipeline.runner.adapter import PortalAdapter
from submissions_pipeline.settings import load_settings

REGISTRY_FILE = "registry.toml"
OEM_FILE = "oem.toml"


class OemConfigError(ValueError):
    """A registry or per-OEM settings file is wrong; the message names the file and the key."""


class RegistryEntry(BaseModel):
    """One OEM in `registry.toml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    adapter: str = Field(pattern=r"^[\w.]+:\w+$", description="module:Class of the adapter.")
    sandbox: bool = Field(
        False, description="A sandbox portal backs it: the demo and the tests use only these."
    )


def _validate(model: type[BaseModel], data: dict[str, Any], path: Path, **extra: Any) -> Any:
    try:
        return model.model_validate({**data, **extra})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(file)"
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown key {where!r}")
            elif err["type"] == "missing":
                problems.append(f"missing key {where!r}")
            else:
                problems.append(f"{where}: {err['msg']}")
        raise OemConfigError(f"{path}: " + "; ".join(problems)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise OemConfigError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise OemConfigError(f"{path}: not valid TOML ({exc})") from None


class OemRegistry:
    """The OEMs of one adapters folder, their settings and their adapters."""

    def __init__(self, folder: Path, entries: dict[str, RegistryEntry]):
        self.folder = folder
        self.entries = entries
        self._settings: dict[str, OemSettings] = {}

    @classmethod
    def load(cls, folder: Path) -> OemRegistry:
        """Read `registry.toml` in `folder` (every OEM's own file is read on first use)."""
        folder = Path(folder).resolve()
        path = folder / REGISTRY_FILE
        data = _read_toml(path)
        entries = {}
        for key, raw in data.items():
            if not isinstance(raw, dict):
                raise OemConfigError(f"{path}: {key!r} must be a table [{key}]")
            entries[key] = _validate(RegistryEntry, raw, path / key)
        return cls(folder, entries)

    def oem_keys(self) -> list[str]:
        """Every registered OEM, sorted: the stable partition keys."""
        return sorted(self.entries)

    def sandbox_oem_keys(self) -> list[str]:
        """The OEMs a sandbox portal backs (what the demo and the tests drive)."""
        return [k for k in self.oem_keys() if self.entries[k].sandbox]

    def folder_of(self, oem: str) -> Path:
        """The OEM's folder: its settings file and its data (selector files)."""
        self._entry(oem)
        return self.folder / oem

    def settings(self, oem: str) -> OemSettings:
        """The OEM's validated settings from `<oem>/oem.toml`."""
        if oem not in self._settings:
            path = self.folder_of(oem) / OEM_FILE
            settings = _validate(OemSettings, _read_toml(path), path, key=oem)
            if not croniter.is_valid(settings.schedule.nightly_cron):
                raise OemConfigError(
                    f"{path}: schedule.nightly_cron: not a cron expression "
                    f"({settings.schedule.nightly_cron!r})"
                )
            self._settings[oem] = settings
        return self._settings[oem]

    def check(self) -> None:
        """Read every OEM's settings now, so a broken file fails at start-up."""
        for oem in self.oem_keys():
            self.settings(oem)

    def adapter_class(self, oem: str) -> type[PortalAdapter]:
        """The adapter class the registry names for `oem`."""
        module, _, name = self._entry(oem).adapter.partition(":")
        # Adapters live in a folder of plug-ins beside the package; make its parent importable.
        parent = str(self.folder.parent)
        if parent not in sys.path:
            sys.path.append(parent)
        cls = getattr(import_module(module), name, None)
        if not (isinstance(cls, type) and issubclass(cls, PortalAdapter)):
            raise OemConfigError(
                f"{self.folder / REGISTRY_FILE}: {oem}.adapter {self._entry(oem).adapter!r} "
                "is not a PortalAdapter subclass"
            )
        return cls

    def load_adapter(self, oem: str) -> PortalAdapter:
        """A fresh adapter for one OEM, given its settings and its folder."""
        return self.adapter_class(oem)(self.settings(oem), self.folder_of(oem))

    def load_adapters(self, oems: list[str] | None = None) -> dict[str, PortalAdapter]:
        """One adapter per OEM (every registered one by default)."""
        return {oem: self.load_adapter(oem) for oem in (oems or self.oem_keys())}

    def _entry(self, oem: str) -> RegistryEntry:
        try:
            return self.entries[oem]
        except KeyError:
            registry = self.folder / REGISTRY_FILE
            raise KeyError(f"unknown OEM {oem!r}; {registry} lists {self.oem_keys()}") from None


@cache
def _registry_at(folder: Path) -> OemRegistry:
    return OemRegistry.load(folder)


def oem_registry(folder: Path | None = None) -> OemRegistry:
    """The registry of `folder` (default: the settings' adapters folder), read once."""
    if folder is None:
        folder = load_settings().adapters_dir
    return _registry_at(Path(folder).resolve())
