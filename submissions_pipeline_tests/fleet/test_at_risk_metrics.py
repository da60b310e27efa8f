"""The jobs at risk reach a worker's `/metrics`: scraped over HTTP, parsed by prometheus-client."""

from __future__ import annotations

from datetime import timedelta
from urllib.request import urlopen

from prometheus_client.parser import text_string_to_metric_families

from submissions_pipeline.domain.fleet import ConcurrencyCaps, FleetPolicy
from submissions_pipeline.oems import oem_registry
from submissions_pipeline.runner.fleet_worker import export_queue_gauges
from submissions_pipeline.runner.worker_health import HealthServer, WorkerHealth, WorkerMetrics
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.conftest import ManualClock
from submissions_pipeline_tests.factories import make_case

#: One worker of one context and no measured jobs yet: each job takes the default 60 s in line.
ONE_CONTEXT = FleetPolicy(min_workers=0, max_workers=1, contexts_per_worker=1, default_p95_s=60)


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(body)
        for s in fam.samples
    }


def test_metrics_count_each_oem_s_jobs_expected_to_finish_after_their_due_date(
    store: JobStore, clock: ManualClock
):
    now = clock()
    registry = oem_registry()
    oems = {
        oem: registry.settings(oem).model_copy(
            update={"fleet": ONE_CONTEXT, "concurrency": ConcurrencyCaps()}
        )
        for oem in ("northwind", "aurora")
    }
    # In claim order (earliest due first): 1 done at 60 s, past its 30 s; 4 at 120 s, past its
    # 90 s; 3 at 180 s, in time; 2 has no due date. Aurora's one job is done at 60 s, in time.
    store.enqueue(make_case(1, due_date=now + timedelta(seconds=30)))
    store.enqueue(make_case(2))
    store.enqueue(make_case(3, due_date=now + timedelta(minutes=10)))
    store.enqueue(make_case(4, due_date=now + timedelta(seconds=90)))
    store.enqueue(make_case(5, oem="aurora", due_date=now + timedelta(minutes=5)))

    metrics = WorkerMetrics()
    server = HealthServer(WorkerHealth(stall_s=30), metrics, "127.0.0.1", 0).start()
    try:
        export_queue_gauges(metrics, store, oems, now)
        m = scrape(server.port)
        assert m[("submissions_jobs_at_risk", (("oem", "northwind"),))] == 2
        assert m[("submissions_jobs_at_risk", (("oem", "aurora"),))] == 0
        assert m[("submissions_worker_desired_workers", (("oem", "northwind"),))] == 1

        store.claim("w", oem="northwind", limit=2)  # the two late ones leave the line
        export_queue_gauges(metrics, store, oems, now)
        assert scrape(server.port)[("submissions_jobs_at_risk", (("oem", "northwind"),))] == 0
    finally:
        server.stop()
