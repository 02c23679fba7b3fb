"""`kubectl kustomize` builds base, KEDA overlay and adapter rules into valid objects."""

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from perf_platform_tests.deploy.manifests import (
    BASE,
    KEDA_OVERLAY,
    METRICS_ADAPTER,
    Manifest,
    Manifests,
)

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not installed: kustomize builds cannot be checked here"
)


def kustomize(directory: Path) -> Manifests:
    assert KUBECTL is not None
    completed = subprocess.run(
        [KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    return Manifests([doc for doc in yaml.safe_load_all(completed.stdout) if doc])


@pytest.fixture(scope="module")
def built_base() -> Manifests:
    return kustomize(BASE)


@pytest.fixture(scope="module")
def built_keda() -> Manifests:
    return kustomize(KEDA_OVERLAY)


def validate_builtin_kinds(manifests: Manifests) -> int:
    validated = 0
    for document in manifests.documents:
        if document["apiVersion"].startswith("keda.sh/"):
            continue
        kubernetes_validate.validate(document, all_versions()[-1], strict=True)
        validated += 1
    return validated


def kinds_and_names(manifests: Manifests) -> set[tuple[str, str]]:
    return {(doc["kind"], doc["metadata"]["name"]) for doc in manifests.documents}


def test_base_builds_into_valid_objects(built_base: Manifests) -> None:
    assert validate_builtin_kinds(built_base) == len(built_base.documents) == 15


def test_base_sets_the_image_and_the_part_of_label(built_base: Manifests) -> None:
    for deployment in built_base.all("Deployment"):
        template = deployment["spec"]["template"]
        assert template["metadata"]["labels"]["app.kubernetes.io/part-of"] == "perf-platform"
        assert [c["image"] for c in template["spec"]["containers"]] == ["perf-platform:0.1.0"]
        # Selectors are immutable once applied: the common label stays out of them.
        assert "app.kubernetes.io/part-of" not in deployment["spec"]["selector"]["matchLabels"]


def test_keda_overlay_builds_into_valid_objects(built_keda: Manifests) -> None:
    assert validate_builtin_kinds(built_keda) == len(built_keda.documents) - 2


def test_keda_overlay_swaps_the_worker_hpa_for_a_scaled_object(
    built_base: Manifests, built_keda: Manifests
) -> None:
    removed = kinds_and_names(built_base) - kinds_and_names(built_keda)
    added = kinds_and_names(built_keda) - kinds_and_names(built_base)

    assert removed == {("HorizontalPodAutoscaler", "signal-ingestion")}
    assert added == {
        ("ScaledObject", "signal-ingestion"),
        ("TriggerAuthentication", "signal-ingestion-redis"),
    }
    scaled: Manifest = built_keda.get("ScaledObject", "signal-ingestion")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "signal-ingestion"


def test_adapter_rules_build_into_the_adapters_config_map() -> None:
    built = kustomize(METRICS_ADAPTER)

    config_map = built.get("ConfigMap", "prometheus-adapter")
    assert config_map["metadata"]["namespace"] == "monitoring"
    rules = yaml.safe_load(config_map["data"]["config.yaml"])
    assert [rule["name"]["as"] for rule in rules["externalRules"]] == ["celery_queue_length"]
    assert validate_builtin_kinds(built) == 1
