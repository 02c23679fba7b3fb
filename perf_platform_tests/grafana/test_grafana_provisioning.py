"""The provisioning files and dashboard JSON that Grafana loads from grafana/."""

import json
import re

import pytest

from perf_platform_tests.grafana.provisioning import (
    DASHBOARDS_DIR,
    DATASOURCES_DIR,
    GRAFANA_DIR,
    PROVIDERS_DIR,
    connect,
    dashboard_files,
    env_references,
    iter_panels,
    load_yaml_files,
    provisioned_datasources,
    run_sql,
)

DATASOURCE_ENV = {
    "GRAFANA_PG_HOST",
    "GRAFANA_PG_DATABASE",
    "GRAFANA_PG_USER",
    "GRAFANA_PG_PASSWORD",
}
DASHBOARDS = dashboard_files()
VALUE_PANELS = ("timeseries", "stat", "table", "bargauge")


def datasource_refs(dashboard: dict) -> list[tuple[str, dict]]:
    """Every data source a dashboard names: panels, their queries, variables, annotations."""
    refs = []
    for panel in iter_panels(dashboard["panels"]):
        if panel["type"] != "row":
            refs.append((f"panel {panel['title']}", panel.get("datasource") or {}))
        for target in panel.get("targets", []):
            refs.append((f"query of {panel['title']}", target.get("datasource") or {}))
    for variable in dashboard["templating"]["list"]:
        refs.append((f"variable {variable['name']}", variable.get("datasource") or {}))
    for annotation in dashboard["annotations"]["list"]:
        refs.append((f"annotation {annotation['name']}", annotation.get("datasource") or {}))
        refs.append((f"query of {annotation['name']}", annotation["target"].get("datasource")))
    return refs


# -- the data source --------------------------------------------------------------------------


def test_the_data_source_takes_host_database_user_and_password_from_the_environment():
    [text] = [path.read_text() for path in DATASOURCES_DIR.glob("*.yaml")]
    env = {name: f"<{name}>" for name in DATASOURCE_ENV}

    source = provisioned_datasources(env)["perf-platform-pg"]

    assert env_references(text) == DATASOURCE_ENV
    assert source["type"] == "grafana-postgresql-datasource"
    assert source["url"] == "<GRAFANA_PG_HOST>"
    assert source["user"] == "<GRAFANA_PG_USER>"
    assert source["jsonData"]["database"] == "<GRAFANA_PG_DATABASE>"
    assert source["secureJsonData"] == {"password": "<GRAFANA_PG_PASSWORD>"}


def test_no_password_is_written_in_the_repository():
    for document in load_yaml_files(DATASOURCES_DIR, env={}):
        for source in document["datasources"]:
            assert "password" not in source
            assert not source.get("secureJsonData", {}).get("password")
    for path in GRAFANA_DIR.rglob("*"):
        if path.is_file():
            assert not re.search(r"(?i)password\s*[:=]\s*['\"]?[^\s'\"$]", path.read_text()), path


def test_the_provisioned_data_source_reaches_the_benchmark_database(filled_database):
    source = provisioned_datasources(filled_database.env)["perf-platform-pg"]

    with connect(source) as connection:
        result = run_sql(connection, "SELECT count(*) AS rows FROM score_benchmarks")

    assert result.rows[0][0] == len(filled_database.history.rows) + 2  # and the job's two phases


def test_the_dashboard_provider_loads_the_dashboards_folder():
    env = {"PERF_PLATFORM_GRAFANA_DIR": str(GRAFANA_DIR)}

    [document] = load_yaml_files(PROVIDERS_DIR, env)
    [provider] = document["providers"]

    assert provider["type"] == "file"
    assert provider["options"]["path"] == str(DASHBOARDS_DIR)
    assert sorted(DASHBOARDS_DIR.glob("*.json")), "no dashboard in the provider's folder"


# -- the dashboards ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(DASHBOARDS_DIR.glob("*.json")), ids=lambda p: p.name)
def test_each_dashboard_file_is_json_in_the_current_schema(path):
    dashboard = json.loads(path.read_text())

    assert dashboard["schemaVersion"] >= 41
    assert dashboard["uid"] and dashboard["title"]
    assert "id" not in dashboard or dashboard["id"] is None  # provisioning assigns ids


def test_dashboard_uids_and_titles_are_unique():
    uids = [dashboard["uid"] for dashboard in DASHBOARDS.values()]
    titles = [dashboard["title"] for dashboard in DASHBOARDS.values()]

    assert len(set(uids)) == len(uids) == 3
    assert len(set(titles)) == len(titles)


@pytest.mark.parametrize("name", DASHBOARDS)
def test_panel_ids_are_unique_within_a_dashboard(name):
    ids = [panel["id"] for panel in iter_panels(DASHBOARDS[name]["panels"])]

    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_panel_query_variable_and_annotation_names_a_provisioned_data_source(name):
    provisioned = provisioned_datasources({})

    for where, ref in datasource_refs(DASHBOARDS[name]):
        assert ref.get("uid") in provisioned, f"{where} names {ref}"
        assert ref.get("type") == provisioned[ref["uid"]]["type"], where


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_dashboard_has_benchmark_host_and_phase_variables(name):
    variables = {v["name"]: v for v in DASHBOARDS[name]["templating"]["list"]}

    assert {"benchmark", "host", "phase"} <= variables.keys()
    assert variables["host"]["multi"] and variables["host"]["includeAll"]
    assert variables["phase"]["multi"] and variables["phase"]["includeAll"]


@pytest.mark.parametrize("name", DASHBOARDS)
def test_panels_carry_units_and_thresholds(name):
    for panel in iter_panels(DASHBOARDS[name]["panels"]):
        if panel["type"] not in VALUE_PANELS:
            continue
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults.get("unit"), panel["title"]
        assert defaults["thresholds"]["steps"][0]["value"] is None, panel["title"]


def test_the_score_time_series_carry_the_flagged_runs():
    [score] = [d for d in DASHBOARDS.values() if d["uid"] == "perf-score-benchmarks"]
    [annotation] = score["annotations"]["list"]

    assert annotation["enable"] is True
    assert "verdict = 'regression'" in annotation["target"]["rawSql"]
    assert any(p["type"] == "timeseries" for p in iter_panels(score["panels"]))


@pytest.mark.parametrize("name", DASHBOARDS)
def test_panel_sql_is_raw_sql_without_comments(name):
    # Grafana's newest engine strips SQL comments before its macros; ours has no comments to strip.
    for panel in iter_panels(DASHBOARDS[name]["panels"]):
        for target in panel.get("targets", []):
            assert target["rawQuery"] is True and target["editorMode"] == "code"
            assert "--" not in target["rawSql"] and "/*" not in target["rawSql"], panel["title"]
            expected = "time_series" if panel["type"] == "timeseries" else "table"
            assert target["format"] == expected, panel["title"]


@pytest.mark.parametrize("name", DASHBOARDS)
def test_panels_fit_the_24_column_grid(name):
    for panel in iter_panels(DASHBOARDS[name]["panels"]):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
