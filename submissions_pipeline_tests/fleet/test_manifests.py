"""The Kubernetes manifests under deploy/k8s are valid offline: built-in kinds against a pinned
Kubernetes version (kubernetes-validate), KEDA's objects against the CRD schemas kept in the
repository; and they say what the code says (the policy's query and bounds, the drain)."""

from __future__ import annotations

import copy
import json

import jsonschema
import kubernetes_validate
import pytest
import yaml

from submissions_pipeline.oems import oem_registry
from submissions_pipeline.settings import PROJECT_ROOT
from submissions_pipeline.store.fleet import desired_workers_query

K8S = PROJECT_ROOT / "deploy" / "k8s"
#: The Kubernetes version the built-in kinds are validated against.
KUBERNETES_VERSION = "1.33.0"
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def keda_schema(kind: str) -> dict:
    return json.loads((K8S / "schemas" / f"keda.sh_v1alpha1_{kind.lower()}.json").read_text())


def by_kind(kind: str) -> dict:
    for name in ("worker-deployment.yaml", "keda-scaledobject.yaml"):
        for doc in documents(name):
            if doc["kind"] == kind:
                return doc
    raise KeyError(kind)


@pytest.mark.parametrize("name", ["worker-deployment.yaml", "keda-scaledobject.yaml"])
def test_every_manifest_is_valid_offline(name):
    for doc in documents(name):
        if doc["kind"] in KEDA_KINDS:
            jsonschema.Draft202012Validator(keda_schema(doc["kind"])).validate(doc)
        else:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_keda_schema_catches_a_misspelt_field():
    scaled = copy.deepcopy(by_kind("ScaledObject"))
    meta = scaled["spec"]["triggers"][0]["metadata"]
    meta["targetQueryValu"] = meta.pop("targetQueryValue")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(keda_schema("ScaledObject")).validate(scaled)


def test_the_scaler_runs_the_policy_with_the_oems_bounds():
    settings = oem_registry(PROJECT_ROOT / "adapters").settings("northwind")
    spec = by_kind("ScaledObject")["spec"]
    query = spec["triggers"][0]["metadata"]["query"]
    assert query == desired_workers_query(
        "northwind", settings.schedule, settings.fleet, settings.concurrency
    )  # regenerate with `submissions fleet keda-query --oem northwind`
    assert spec["minReplicaCount"] == settings.fleet.min_workers
    assert spec["maxReplicaCount"] == settings.fleet.max_workers
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"]["policies"]


def test_the_worker_pod_drains_in_time_with_shared_memory_an_init_and_secrets_as_files():
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    (worker,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert pod["terminationGracePeriodSeconds"] > float(env["SUBMISSIONS_WORKER_DRAIN_GRACE_S"])
    assert worker["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert worker["readinessProbe"]["httpGet"]["path"] == "/readyz"
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in worker["volumeMounts"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    assert "secret" in volumes[mounts["/var/run/secrets/submissions"]]
    assert env["SUBMISSIONS_CREDENTIALS_FILE"].startswith("/var/run/secrets/submissions/")
    assert ":" not in env["SUBMISSIONS_DB_URL"].split("@")[0].removeprefix("postgresql://")
    assert not any("secretKeyRef" in json.dumps(e) for e in worker["env"])  # files, not env
    dockerfile = (K8S / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["/usr/bin/tini", "--"]' in dockerfile


def test_the_dagster_chart_values_launch_each_run_in_a_pod_and_keep_logs_in_s3():
    values = yaml.safe_load((K8S / "dagster-values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["computeLogManager"]["type"] == "S3ComputeLogManager"
    assert values["postgresql"]["enabled"] is False
    assert values["dagsterDaemon"]["runRetries"]["retryOnAssetOrOpFailure"] is False
