"""Serves the local Salesforce org over TLS on loopback, with a throwaway CA.

simple-salesforce builds every URL as `https://host:port/...`, so the org speaks TLS with a
certificate from a CA made for this process only (trustme); `ca_file` is the bundle a client
trusts, and `requests_session()` a session that trusts it (and ignores REQUESTS_CA_BUNDLE).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import ssl
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
import trustme
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.background import BackgroundServers
from sandbox.salesforce.app import SalesforceApp, configure
from sandbox.salesforce.org import HUMAN_USER, Client, LedgerEntry, Org

#: The connected app the demo and the tests log in with.
CLIENT_ID = "sandbox-connected-app"
USERNAME = "integration@sandbox.example"


class SalesforceServer(BackgroundServers):
    """The local org on https://127.0.0.1:port; use as a context manager."""

    def __init__(self, *, port: int = 0, batch_size: int = 2000, folder: Path | None = None):
        super().__init__()
        self.org = Org(batch_size=batch_size)
        self._port = port
        self._folder = Path(folder or tempfile.mkdtemp(prefix="salesforce-sandbox-"))
        self._folder.mkdir(parents=True, exist_ok=True)
        self._ca = trustme.CA()
        self.ca_file = self._folder / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_file))
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.client_secret = secrets.token_urlsafe(24)  # throwaway, per server
        self.org.register_client(
            Client(
                client_id=CLIENT_ID,
                client_secret=self.client_secret,
                public_key_pem=key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
                username=USERNAME,
            )
        )
        self.api = SalesforceApp(self.org)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> SalesforceServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        sock.listen(128)
        self._port = sock.getsockname()[1]
        self.api.base_url = self.url
        cert = self._ca.issue_cert("127.0.0.1", "localhost")
        cert_file, key_file = self._folder / "server.pem", self._folder / "server.key"
        cert.cert_chain_pems[0].write_to_path(str(cert_file))
        cert.private_key_pem.write_to_path(str(key_file))
        server = uvicorn.Server(
            uvicorn.Config(
                self.api.app,
                log_level="warning",
                access_log=False,
                date_header=False,  # the org's clock stamps Date (OrgClockDate)
                lifespan="off",
                ssl_certfile=str(cert_file),
                ssl_keyfile=str(key_file),
                timeout_graceful_shutdown=1,
            )
        )
        self._servers = [server]

        def serve() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            finally:
                sock.close()

        self._thread = threading.Thread(target=serve, name="salesforce-sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while True:
            try:
                self.admin("GET", "config")
                return self
            except (requests.ConnectionError, ssl.SSLError):
                if time.monotonic() > deadline:
                    raise RuntimeError("the Salesforce sandbox did not start") from None
                time.sleep(0.05)

    # ---------------------------------------------------------------- addresses
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._port}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/services/oauth2/token"

    def requests_session(self) -> requests.Session:
        """A session that trusts this server's CA (and nothing the environment says)."""
        session = requests.Session()
        session.trust_env = False
        session.verify = str(self.ca_file)
        return session

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        with self.requests_session() as session:
            r = session.request(method, f"{self.url}/__admin/{path}", json=body, timeout=10)
        r.raise_for_status()
        return r.json()

    # ---------------------------------------------------------------- state
    def configure(self, **knobs: Any) -> None:
        """Fault knobs, as `POST /__admin/config` (see `app.configure`)."""
        configure(self.org, **knobs)

    def reset(self) -> None:
        self.org.reset()

    def insert(self, obj: str, values: dict[str, Any]) -> str:
        """A record entered by a person (not the integration user; not in the ledger)."""
        return self.org.insert(obj, values, user=HUMAN_USER)

    def ledger(self, obj: str | None = None) -> list[LedgerEntry]:
        return self.org.writes(obj)

    def records(self, obj: str) -> list[dict[str, Any]]:
        return self.org.records(obj)
