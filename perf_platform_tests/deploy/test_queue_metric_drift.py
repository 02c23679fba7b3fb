"""The queue-pressure chain holds together: the exporter in signal-ingestion-web, the
prometheus-adapter rule, the worker HPA and the KEDA overlay name the same metric, the same
label and queues, the same Redis lists and the same target (DESIGN.md: average 30)."""

import re
from collections.abc import Iterator

import kombu
import pytest
import redis
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from perf_platform.settings import Settings
from perf_platform_tests.deploy.manifests import (
    ADAPTER_CONFIG,
    BASE,
    KEDA_OVERLAY,
    Manifest,
    Manifests,
    containers,
    hpa_for,
    load_documents,
)
from services.signal_ingestion.queue_metrics import (
    METRIC_NAME,
    CeleryQueueLengthCollector,
    queue_keys,
)
from services.signal_ingestion.queueing import queue_names, transport_options

# DESIGN.md: the signal-ingestion deployment scales on celery_queue_length, target average 30.
SCALED_DEPLOYMENT = "signal-ingestion"
TARGET_AVERAGE = 30


@pytest.fixture(scope="module")
def base() -> Manifests:
    return Manifests.of(BASE)


@pytest.fixture(scope="module")
def deployed_settings(base: Manifests) -> Settings:
    """Settings as the pods get them from the ConfigMap (queue names and key prefix)."""
    data = base.get("ConfigMap", "perf-platform-config")["data"]
    fields = {key.lower(): value for key, value in data.items()}
    return Settings(
        **{name: value for name, value in fields.items() if name in Settings.model_fields}
    )


@pytest.fixture(scope="module")
def external_metric(base: Manifests) -> Manifest:
    hpa = hpa_for(base, SCALED_DEPLOYMENT)
    external = [
        metric["external"] for metric in hpa["spec"]["metrics"] if metric["type"] == "External"
    ]
    assert len(external) == 1
    return external[0]


@pytest.fixture(scope="module")
def adapter_rule() -> Manifest:
    rules = yaml.safe_load(ADAPTER_CONFIG.read_text())["externalRules"]
    assert len(rules) == 1
    return rules[0]


@pytest.fixture(scope="module")
def scaled_object() -> Manifest:
    (document,) = [
        doc for doc in load_documents(KEDA_OVERLAY / "keda.yaml") if doc["kind"] == "ScaledObject"
    ]
    return document


def redis_triggers(scaled_object: Manifest) -> list[Manifest]:
    return [trigger for trigger in scaled_object["spec"]["triggers"] if trigger["type"] == "redis"]


def selected_queues(external_metric: Manifest) -> set[str]:
    (expression,) = external_metric["metric"]["selector"]["matchExpressions"]
    assert (expression["key"], expression["operator"]) == ("queue_name", "In")
    return set(expression["values"])


# The HPA


def test_the_scaled_deployment_is_the_celery_worker(base: Manifests) -> None:
    (container,) = containers(base.get("Deployment", SCALED_DEPLOYMENT))

    assert container["command"][:4] == [
        "celery",
        "-A",
        "services.signal_ingestion.worker:celery_app",
        "worker",
    ]


def test_hpa_asks_for_the_exported_metric_at_the_design_target(external_metric: Manifest) -> None:
    assert external_metric["metric"]["name"] == METRIC_NAME
    assert external_metric["target"] == {
        "type": "AverageValue",
        "averageValue": str(TARGET_AVERAGE),
    }


def test_hpa_selects_every_queue_the_worker_consumes(
    external_metric: Manifest, deployed_settings: Settings
) -> None:
    assert selected_queues(external_metric) == set(queue_names(deployed_settings))


# The prometheus-adapter rule


def test_adapter_serves_the_metric_under_its_own_name(adapter_rule: Manifest) -> None:
    series_metric = re.match(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\{", adapter_rule["seriesQuery"])

    assert series_metric is not None
    assert series_metric.group(1) == METRIC_NAME
    assert re.search(adapter_rule["name"]["matches"], METRIC_NAME)
    assert adapter_rule["name"]["as"] == METRIC_NAME


def test_adapter_keeps_the_label_the_hpa_selects_on(
    adapter_rule: Manifest, external_metric: Manifest
) -> None:
    (selector_key,) = {e["key"] for e in external_metric["metric"]["selector"]["matchExpressions"]}

    assert f'{selector_key}!=""' in adapter_rule["seriesQuery"]
    grouping = re.search(r"\bby\s*\(([^)]*)\)", adapter_rule["metricsQuery"])
    assert grouping is not None
    assert {label.strip() for label in grouping.group(1).split(",")} == {selector_key}
    assert "<<.LabelMatchers>>" in adapter_rule["metricsQuery"]


def test_adapter_does_not_add_up_the_copies_each_web_replica_exports(
    adapter_rule: Manifest,
) -> None:
    # Every signal-ingestion-web pod reports the same Redis lengths; sum would multiply them.
    assert re.match(r"\s*(max|avg)\b", adapter_rule["metricsQuery"])


def test_adapter_answers_in_the_hpas_namespace(adapter_rule: Manifest) -> None:
    assert adapter_rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}}


# The KEDA overlay


def test_keda_counts_exactly_the_lists_the_exporter_sums(
    scaled_object: Manifest, deployed_settings: Settings
) -> None:
    options = transport_options(deployed_settings)
    exporter_keys = {
        key for queue in queue_names(deployed_settings) for key in queue_keys(queue, options)
    }

    listed = [trigger["metadata"]["listName"] for trigger in redis_triggers(scaled_object)]

    assert len(listed) == len(set(listed))
    assert set(listed) == exporter_keys


def test_keda_adds_up_every_list_into_one_metric_at_the_design_target(
    scaled_object: Manifest,
) -> None:
    modifiers = scaled_object["spec"]["advanced"]["scalingModifiers"]
    names = [trigger["name"] for trigger in redis_triggers(scaled_object)]

    terms = [term.strip() for term in modifiers["formula"].split("+")]
    assert sorted(terms) == sorted(names)
    assert modifiers["metricType"] == "AverageValue"
    assert modifiers["target"] == str(TARGET_AVERAGE)


def test_keda_keeps_the_hpa_bounds_and_resource_targets(
    scaled_object: Manifest, base: Manifests
) -> None:
    hpa = hpa_for(base, SCALED_DEPLOYMENT)["spec"]
    spec = scaled_object["spec"]

    assert spec["scaleTargetRef"] == hpa["scaleTargetRef"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (
        hpa["minReplicas"],
        hpa["maxReplicas"],
    )
    keda_resources = {
        trigger["type"]: int(trigger["metadata"]["value"])
        for trigger in spec["triggers"]
        if trigger["type"] in {"cpu", "memory"}
    }
    hpa_resources = {
        metric["resource"]["name"]: metric["resource"]["target"]["averageUtilization"]
        for metric in hpa["metrics"]
        if metric["type"] == "Resource"
    }
    assert keda_resources == hpa_resources


# The exporter, against a real Redis with tasks published the way Celery publishes them


@pytest.fixture
def published(redis_url: str, redis_prefix: str, deployed_settings: Settings) -> Iterator[Settings]:
    """Tasks at every priority in both queues, under this run's key prefix; deleted after."""
    settings = deployed_settings.model_copy(
        update={"celery_global_keyprefix": f"{redis_prefix}drift:"}
    )
    options = transport_options(settings)
    with kombu.Connection(redis_url, transport_options=options) as connection:
        producer = connection.Producer()
        for queue_name, count in zip(queue_names(settings), (12, 5), strict=True):
            queue = kombu.Queue(queue_name, kombu.Exchange(queue_name, "direct"), queue_name)
            for index in range(count):
                producer.publish(
                    {"task": index},
                    exchange=queue.exchange,
                    routing_key=queue_name,
                    declare=[queue],
                    priority=index % 10,
                )

    yield settings

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{settings.celery_global_keyprefix}*"):
        client.delete(key)
    client.close()


def test_exporter_publishes_what_the_hpa_and_keda_read(
    published: Settings, redis_url: str, external_metric: Manifest, scaled_object: Manifest
) -> None:
    queues = queue_names(published)
    collector = CeleryQueueLengthCollector(redis_url, queues, transport_options(published))
    registry = CollectorRegistry()
    registry.register(collector)

    families = {
        family.name: family
        for family in text_string_to_metric_families(generate_latest(registry).decode())
    }
    client = redis.Redis.from_url(redis_url)
    keda_total = sum(
        client.llen(published.celery_global_keyprefix + trigger["metadata"]["listName"])
        for trigger in redis_triggers(scaled_object)
    )
    client.close()

    family = families[external_metric["metric"]["name"]]
    exported = {sample.labels["queue_name"]: sample.value for sample in family.samples}
    assert {tuple(sample.labels) for sample in family.samples} == {("queue_name",)}
    assert exported == {"signals": 12.0, "signals-gpu": 5.0}
    assert set(exported) == selected_queues(external_metric)
    assert keda_total == sum(exported.values()) == 17
