"""Every manifest in deploy/ is a valid object of a current Kubernetes (kubernetes-validate, strict:
no unknown fields), and the Deployments, Services and HPAs say what the platform needs."""

import copy
from pathlib import Path

import kubernetes_validate
import pytest
from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication
from kubernetes_validate.utils import SchemaNotFoundError, all_versions

from perf_platform_tests.deploy.manifests import (
    BASE,
    DEPLOY,
    KEDA_OVERLAY,
    Manifest,
    Manifests,
    containers,
    hpa_for,
    load_documents,
    object_files,
)

# The newest Kubernetes minor versions kubernetes-validate has schemas for: the current releases.
KUBERNETES_VERSIONS = all_versions()[-3:]
# Objects of KEDA's custom resources, which kubernetes-validate has no schema for.
KEDA_MODELS = {"ScaledObject": ScaledObject, "TriggerAuthentication": TriggerAuthentication}

WEB_DEPLOYMENTS = ["scoring", "analytics", "gateway", "signal-ingestion-web"]
WORKER_DEPLOYMENT = "signal-ingestion"
WEB_PORT = 8000


def manifest_ids(path: Path) -> str:
    return str(path.relative_to(DEPLOY))


def test_the_versions_checked_are_current() -> None:
    major, minor, *_ = (int(part) for part in KUBERNETES_VERSIONS[-1].split("."))
    assert (major, minor) >= (1, 35)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", object_files(), ids=manifest_ids)
def test_manifest_is_valid_kubernetes_strictly(path: Path, version: str) -> None:
    documents = load_documents(path)
    assert documents

    for document in documents:
        if document["kind"] in KEDA_MODELS:
            continue
        kubernetes_validate.validate(document, version, strict=True)


def keda_round_trip(document: Manifest) -> Manifest:
    model = KEDA_MODELS[document["kind"]].model_validate(document)
    return model.model_dump(by_alias=True, exclude_unset=True, mode="json")


@pytest.mark.parametrize(
    "document", load_documents(KEDA_OVERLAY / "keda.yaml"), ids=lambda d: d["kind"]
)
def test_keda_objects_match_keda_schema_field_for_field(document: Manifest) -> None:
    # The models are generated from KEDA's CRDs; a field they do not know is dropped on the way
    # through, so an unknown or misspelt field shows as a difference.
    assert keda_round_trip(document) == document


def test_strict_validation_rejects_an_unknown_field() -> None:
    deployment = copy.deepcopy(Manifests.of(BASE).get("Deployment", "scoring"))
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {}

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_keda_check_rejects_a_misspelt_field() -> None:
    scaled_object = copy.deepcopy(load_documents(KEDA_OVERLAY / "keda.yaml")[0])
    scaled_object["spec"]["minReplicas"] = 2

    assert keda_round_trip(scaled_object) != scaled_object


def test_only_keda_kinds_lack_a_kubernetes_schema() -> None:
    kinds_without_schema = set()
    for path in object_files():
        for document in load_documents(path):
            try:
                kubernetes_validate.validate(document, KUBERNETES_VERSIONS[-1], strict=True)
            except SchemaNotFoundError:
                kinds_without_schema.add(document["kind"])

    assert kinds_without_schema == set(KEDA_MODELS)


# What the base says


@pytest.fixture(scope="module")
def base() -> Manifests:
    return Manifests.of(BASE)


def test_base_has_a_deployment_per_service(base: Manifests) -> None:
    names = {deployment["metadata"]["name"] for deployment in base.all("Deployment")}

    assert names == {*WEB_DEPLOYMENTS, WORKER_DEPLOYMENT}


@pytest.mark.parametrize("name", [*WEB_DEPLOYMENTS, WORKER_DEPLOYMENT])
def test_every_container_requests_cpu_and_memory(base: Manifests, name: str) -> None:
    # The HPAs' utilization targets are percentages of these requests.
    for container in containers(base.get("Deployment", name)):
        requests = container["resources"]["requests"]
        assert {"cpu", "memory"} <= set(requests)


@pytest.mark.parametrize("name", [*WEB_DEPLOYMENTS, WORKER_DEPLOYMENT])
def test_every_deployment_scales_two_to_five_on_cpu_and_memory(base: Manifests, name: str) -> None:
    hpa = hpa_for(base, name)

    spec = hpa["spec"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 5)
    resources = {
        metric["resource"]["name"]: metric["resource"]["target"]
        for metric in spec["metrics"]
        if metric["type"] == "Resource"
    }
    assert set(resources) == {"cpu", "memory"}
    assert all(target["type"] == "Utilization" for target in resources.values())
    assert "replicas" not in base.get("Deployment", name)["spec"]


@pytest.mark.parametrize("name", WEB_DEPLOYMENTS)
def test_web_deployments_probe_healthz_and_are_scraped_on_their_port(
    base: Manifests, name: str
) -> None:
    deployment = base.get("Deployment", name)
    (container,) = containers(deployment)

    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": WEB_PORT}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(WEB_PORT),
        "prometheus.io/path": "/metrics",
    }


@pytest.mark.parametrize("name", WEB_DEPLOYMENTS)
def test_each_web_service_routes_to_its_pods_port(base: Manifests, name: str) -> None:
    service = base.get("Service", name)
    pod_labels = base.get("Deployment", name)["spec"]["template"]["metadata"]["labels"]

    selector = service["spec"]["selector"]
    assert selector.items() <= pod_labels.items()
    assert service["spec"]["ports"] == [{"name": "http", "port": WEB_PORT, "targetPort": "http"}]


def test_services_run_the_commands_they_are_documented_with(base: Manifests) -> None:
    commands = {
        deployment["metadata"]["name"]: next(containers(deployment))["command"]
        for deployment in base.all("Deployment")
    }

    def uvicorn(factory: str) -> list[str]:
        return ["uvicorn", "--factory", factory, "--host", "0.0.0.0", "--port", "8000"]

    assert commands == {
        "scoring": uvicorn("services.scoring.app:create_app"),
        "analytics": uvicorn("services.analytics.app:create_app"),
        "gateway": uvicorn("services.gateway.app:create_app"),
        "signal-ingestion-web": [
            "gunicorn",
            "-b",
            "0.0.0.0:8000",
            "services.signal_ingestion.app:create_app()",
        ],
        "signal-ingestion": [
            "celery",
            "-A",
            "services.signal_ingestion.worker:celery_app",
            "worker",
            "--concurrency=2",
        ],
    }


def test_settings_come_from_the_config_map_and_the_secret(base: Manifests) -> None:
    config_map = base.get("ConfigMap", "perf-platform-config")

    for deployment in base.all("Deployment"):
        for container in containers(deployment):
            assert container["envFrom"] == [
                {"configMapRef": {"name": "perf-platform-config"}},
                {"secretRef": {"name": "perf-platform-secrets"}},
            ]
    # Secrets never sit in the ConfigMap; the Secret itself is not in the repository.
    assert not {"PERF_PLATFORM_DATABASE_URL", "REDIS_URL"} & set(config_map["data"])
    assert not base.all("Secret")
