"""Reading the Kubernetes manifests in deploy/ the way the tests need them."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from perf_platform.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
BASE = DEPLOY / "base"
KEDA_OVERLAY = DEPLOY / "overlays" / "keda"
METRICS_ADAPTER = DEPLOY / "metrics-adapter"
# Files in deploy/ that are not Kubernetes objects.
KUSTOMIZATION = "kustomization.yaml"
ADAPTER_CONFIG = METRICS_ADAPTER / "config.yaml"

Manifest = dict[str, Any]


def load_documents(path: Path) -> list[Manifest]:
    with path.open() as stream:
        return [document for document in yaml.safe_load_all(stream) if document]


def object_files() -> list[Path]:
    """Every YAML file in deploy/ that holds Kubernetes objects."""
    files = sorted(DEPLOY.rglob("*.yaml"))
    return [path for path in files if path.name != KUSTOMIZATION and path != ADAPTER_CONFIG]


class Manifests:
    """The objects of one kustomization directory's own files, found by kind and name."""

    def __init__(self, documents: list[Manifest]) -> None:
        self.documents = documents

    @classmethod
    def of(cls, directory: Path) -> "Manifests":
        kustomization = yaml.safe_load((directory / KUSTOMIZATION).read_text())
        documents: list[Manifest] = []
        for resource in kustomization.get("resources", []):
            path = directory / resource
            if path.is_file():
                documents.extend(load_documents(path))
        return cls(documents)

    def all(self, kind: str) -> list[Manifest]:
        return [document for document in self.documents if document["kind"] == kind]

    def get(self, kind: str, name: str) -> Manifest:
        found = [doc for doc in self.all(kind) if doc["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} named {name}, found {len(found)}"
        return found[0]


def containers(deployment: Manifest) -> Iterator[Manifest]:
    yield from deployment["spec"]["template"]["spec"]["containers"]


def hpa_for(manifests: Manifests, deployment: str) -> Manifest:
    """The HorizontalPodAutoscaler whose target is the named Deployment."""
    found = [
        hpa
        for hpa in manifests.all("HorizontalPodAutoscaler")
        if hpa["spec"]["scaleTargetRef"]
        == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment}
    ]
    assert len(found) == 1, f"expected one HPA for Deployment {deployment}, found {len(found)}"
    return found[0]
