"""Everything a worker needs from the outside world, assembled once and passed in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from submissions_pipeline.artifacts import ArtifactStore
from submissions_pipeline.credentials import CredentialProvider
from submissions_pipeline.domain.clock import utcnow
from submissions_pipeline.runner.adapter import PortalAdapter
from submissions_pipeline.store import JobStore


@dataclass
class RunnerDeps:
    """The job store, artifact store, credentials, adapters and portal addresses of a worker."""

    store: JobStore
    artifacts: ArtifactStore
    credentials: CredentialProvider
    adapters: dict[str, PortalAdapter]
    portal_urls: dict[str, str]
    home: Path
    clock: Callable[[], datetime] = utcnow
    #: Called after each renewed lease (a fleet worker counts them and reads them as liveness).
    on_lease_renewed: Callable[[], None] | None = None
    #: The worker's CPU seconds so far (this process, the driver and the browser tree), read at
    #: each step's start and end: the benchmark's CPU per step. None (nothing read) in service.
    cpu_clock: Callable[[], float] | None = None

    def blocked_hosts(self) -> list[str]:
        """Every OEM's third-party hosts this worker's browser leaves unresolved."""
        return [h for a in self.adapters.values() for h in a.settings.browser.block_hosts]

    def base_url(self, oem: str) -> str:
        """Where this OEM's portal lives; a missing address is a configuration error."""
        try:
            return self.portal_urls[oem].rstrip("/")
        except KeyError:
            raise KeyError(f"no portal URL configured for OEM {oem!r}") from None
