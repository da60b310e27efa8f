"""A fleet worker's window for its orchestrator: `/healthz`, `/readyz` and Prometheus `/metrics`.

Served from a thread of its own, so a probe still gets an answer (a 503) when the worker's event
loop or its database stalls; that is what lets Kubernetes replace a stuck worker.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

#: Step-time buckets (seconds): portal steps take from a fraction of a second to a slow search.
STEP_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)


class WorkerMetrics:
    """The worker's Prometheus metrics, on a registry of its own (nothing global)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        p = "submissions_worker_"
        self.jobs = Counter(
            f"{p}jobs",
            "Attempts finished, by OEM and resulting state.",
            ["oem", "state"],
            registry=r,
        )
        self.failures = Counter(
            f"{p}failures", "Failed attempts by reason code.", ["oem", "reason_code"], registry=r
        )
        self.job_seconds = Histogram(
            f"{p}job_seconds", "Time of one attempt.", ["oem"], buckets=STEP_BUCKETS, registry=r
        )
        self.step_seconds = Histogram(
            f"{p}step_seconds", "Time of one step.", ["step"], buckets=STEP_BUCKETS, registry=r
        )
        self.contexts_in_use = Gauge(f"{p}contexts_in_use", "Browser contexts open.", registry=r)
        self.browser_pss = Gauge(
            f"{p}browser_pss_bytes", "PSS of the browser's process tree.", registry=r
        )
        self.browser_launches = Gauge(
            f"{p}browser_launches",
            "Browser launches since start (1 when all went well).",
            registry=r,
        )
        self.browser_relaunches = Counter(
            f"{p}browser_relaunches", "Browser relaunches by reason.", ["reason"], registry=r
        )
        self.lease_renewals = Counter(
            f"{p}lease_renewals", "Heartbeats that kept a lease.", registry=r
        )
        self.desired_workers = Gauge(
            f"{p}desired_workers", "Workers the autoscaling policy asks for.", ["oem"], registry=r
        )
        # Named for the queue, not the worker: every worker of the fleet reports the same value.
        self.jobs_at_risk = Gauge(
            "submissions_jobs_at_risk",
            "Due jobs expected to finish after their due date (position x p95 / concurrency).",
            ["oem"],
            registry=r,
        )
        self.draining = Gauge(
            f"{p}draining", "1 once SIGTERM asked the worker to stop.", registry=r
        )
        self.released = Counter(
            f"{p}released_jobs", "In-flight jobs given back at a drain's end.", registry=r
        )


class WorkerHealth:
    """Liveness and readiness as the loop reports them; read by the probe thread.

    Alive: the event loop ticked and the store answered (a claim, a reap, a heartbeat) within
    `stall_s`. Ready: the browser is up and the worker is not draining.
    """

    def __init__(self, stall_s: float):
        self.stall_s = stall_s
        now = time.monotonic()
        self.loop_tick = now
        self.store_beat = now
        self.browser_up = False
        self.draining = False

    def tick(self) -> None:
        self.loop_tick = time.monotonic()

    def store_answered(self) -> None:
        self.store_beat = time.monotonic()

    def problems(self) -> list[str]:
        """Why the worker is not alive (empty: alive)."""
        now = time.monotonic()
        out = []
        if now - self.loop_tick > self.stall_s:
            out.append(f"event loop silent for {now - self.loop_tick:.0f}s")
        if now - self.store_beat > self.stall_s:
            out.append(f"no claim, reap or heartbeat answered for {now - self.store_beat:.0f}s")
        return out

    @property
    def ready(self) -> bool:
        return self.browser_up and not self.draining


class HealthServer:
    """The probe and metrics endpoints on a port of their own, in a daemon thread."""

    def __init__(self, health: WorkerHealth, metrics: WorkerMetrics, host: str, port: int):
        health_, metrics_ = health, metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    problems = health_.problems()
                    self._send(503 if problems else 200, "; ".join(problems) or "ok")
                elif self.path == "/readyz":
                    self._send(200 if health_.ready else 503, "ready" if health_.ready else "no")
                elif self.path == "/metrics":
                    self._send(200, generate_latest(metrics_.registry), CONTENT_TYPE_LATEST)
                else:
                    self._send(404, "not found")

            def _send(self, code: int, body: str | bytes, ctype: str = "text/plain") -> None:
                data = body.encode() if isinstance(body, str) else body
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:  # probes every few seconds: quiet
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="worker-health", daemon=True
        )

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
