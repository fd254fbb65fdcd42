"""manifests/deploy: schema-valid, and every timing and port tied to the runtime's settings."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
import yaml
from support import ROOT

from runtime.settings import Settings

DEPLOY = ROOT / "manifests" / "deploy"
HEALTHCHECK = "/opt/flash/healthcheck.py"  # where the images install images/healthcheck.py
# preStop `sleep` is in the schemas from 1.30 on (beta, on by default); validate there and latest.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())
# Fields of a Knative RevisionSpec that a Kubernetes PodSpec does not have.
KNATIVE_REVISION_FIELDS = (
    "containerConcurrency",
    "timeoutSeconds",
    "idleTimeoutSeconds",
    "responseStartTimeoutSeconds",
)
# Container fields Knative's webhook refuses (it runs its own drain through queue-proxy).
KNATIVE_FORBIDDEN_CONTAINER = ("lifecycle", "stdin", "stdinOnce", "tty", "volumeDevices")
KNATIVE_RESERVED_ENV = ("PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION")


def documents(name: str) -> dict[str, dict]:
    with open(DEPLOY / name) as stream:
        return {doc["kind"]: doc for doc in yaml.safe_load_all(stream) if doc}


def runtime_settings(container: dict) -> Settings:
    """The runtime's own parse of the container's environment (a bad value fails here)."""
    env = {item["name"]: item["value"] for item in container.get("env", [])}
    return Settings.from_env({"FLASH_MODULE_PATH": "/app", **env})


def container_port(container: dict, port: int | str | None) -> int:
    """A probe's or a Service's port, resolving a port name against the container's ports."""
    ports = container["ports"]
    if port is None:
        return ports[0]["containerPort"]
    if isinstance(port, str):
        return next(p["containerPort"] for p in ports if p.get("name") == port)
    return port


def check_probe(container: dict, probe_name: str, port: int) -> None:
    probe = container[probe_name]
    if "httpGet" in probe:
        assert probe["httpGet"]["path"] == "/ping", probe_name
        assert container_port(container, probe["httpGet"].get("port")) == port, probe_name
    else:
        # Only 200 means ready; the image's check asks /ping on PORT for exactly that.
        assert probe["exec"]["command"][-1] == HEALTHCHECK, probe_name


@pytest.fixture(scope="module")
def kubernetes() -> dict[str, dict]:
    return documents("kubernetes.yaml")


@pytest.fixture(scope="module")
def knative() -> dict:
    return documents("knative.yaml")["Service"]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_objects_match_the_schemas(kubernetes, version) -> None:
    assert set(kubernetes) == {"Deployment", "Service"}
    for doc in kubernetes.values():
        kubernetes_validate.validate(doc, version, strict=True)


def test_kubernetes_schema_validation_catches_a_typo(kubernetes) -> None:
    broken = copy.deepcopy(kubernetes["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


def test_grace_period_covers_prestop_and_drain(kubernetes) -> None:
    pod = kubernetes["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    settings = runtime_settings(container)
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop >= 1
    assert pod["terminationGracePeriodSeconds"] >= settings.graceful_timeout + pre_stop


def test_kubernetes_probes_ask_ping_on_port_8000(kubernetes) -> None:
    container = kubernetes["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    settings = runtime_settings(container)
    assert settings.port == 8000 == container_port(container, "http")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        check_probe(container, probe, settings.port)
    # A booting worker answers 204, which an httpGet probe would count as started.
    assert "exec" in container["startupProbe"]


def test_liveness_never_kills_a_draining_worker(kubernetes, knative) -> None:
    containers = (
        kubernetes["Deployment"]["spec"]["template"]["spec"]["containers"][0],
        knative["spec"]["template"]["spec"]["containers"][0],
    )
    for container in containers:
        probe = container["livenessProbe"]
        # /ping is 503 for up to FLASH_GRACEFUL_TIMEOUT; the first failure may come right away.
        tolerated = probe["periodSeconds"] * (probe["failureThreshold"] - 1)
        assert tolerated > runtime_settings(container).graceful_timeout


def test_rollout_keeps_capacity_and_service_reaches_the_pods(kubernetes) -> None:
    deployment, service = kubernetes["Deployment"], kubernetes["Service"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    target = service["spec"]["ports"][0]["targetPort"]
    assert container_port(container, target) == runtime_settings(container).port


def test_knative_pod_part_matches_the_kubernetes_schemas(knative) -> None:
    # Knative is a CRD whose schema kubernetes-validate does not ship: validate the template as
    # the Pod Knative makes from it, and check the Knative-only fields in the tests below.
    template = copy.deepcopy(knative["spec"]["template"])
    pod_spec = {k: v for k, v in template["spec"].items() if k not in KNATIVE_REVISION_FIELDS}
    for container in pod_spec["containers"]:
        # Knative fills an httpGet probe's port with the container's port.
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            http_get = container.get(probe, {}).get("httpGet")
            if http_get is not None:
                http_get.setdefault("port", container["ports"][0]["containerPort"])
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": knative["metadata"]["name"], **template.get("metadata", {})},
        "spec": pod_spec,
    }
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(knative, K8S_VERSIONS[-1], strict=True)


def test_knative_fields_follow_knative_rules(knative) -> None:
    assert knative["apiVersion"] == "serving.knative.dev/v1"
    spec = knative["spec"]["template"]["spec"]
    assert "terminationGracePeriodSeconds" not in spec
    [container] = spec["containers"]
    assert not set(container) & set(KNATIVE_FORBIDDEN_CONTAINER)
    assert not {e["name"] for e in container.get("env", [])} & set(KNATIVE_RESERVED_ENV)
    [port] = container["ports"]
    assert port["name"] in ("http1", "h2c")
    assert (
        isinstance(spec["containerConcurrency"], int) and 0 <= spec["containerConcurrency"] <= 1000
    )
    # 600 s is Knative's default max-revision-timeout-seconds.
    assert 0 < spec["timeoutSeconds"] <= 600
    annotations = knative["spec"]["template"]["metadata"]["annotations"]
    assert all(isinstance(v, str) for v in annotations.values())
    low = int(annotations["autoscaling.knative.dev/min-scale"])
    high = int(annotations["autoscaling.knative.dev/max-scale"])
    assert 0 <= low <= high
    assert 0 < float(annotations["autoscaling.knative.dev/target"]) <= spec["containerConcurrency"]


def test_knative_timings_and_ports_fit_the_runtime(knative) -> None:
    spec = knative["spec"]["template"]["spec"]
    container = spec["containers"][0]
    # Knative sets PORT to the containerPort; the runtime must parse it as its port.
    port = container["ports"][0]["containerPort"]
    settings = runtime_settings(
        {**container, "env": [*container["env"], {"name": "PORT", "value": str(port)}]}
    )
    assert port == 8000
    assert settings.request_timeout < spec["timeoutSeconds"]
    # timeoutSeconds is also the pod's grace period.
    assert settings.graceful_timeout < spec["timeoutSeconds"]
    assert settings.max_concurrency == spec["containerConcurrency"]
    for probe in ("readinessProbe", "livenessProbe"):
        check_probe(container, probe, port)
    assert "exec" in container["readinessProbe"]
