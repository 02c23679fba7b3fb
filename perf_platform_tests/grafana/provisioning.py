"""Read grafana/ the way Grafana does: provisioning files with their environment filled in, the
dashboards they point at, and every SQL query a dashboard would send."""

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml

from perf_platform.settings import PROJECT_ROOT
from perf_platform_tests.grafana.macros import (
    ALL_VALUE,
    BackendQuery,
    Dashboard,
    Variable,
    interpolate,
)

GRAFANA_DIR = PROJECT_ROOT / "grafana"
DATASOURCES_DIR = GRAFANA_DIR / "provisioning" / "datasources"
PROVIDERS_DIR = GRAFANA_DIR / "provisioning" / "dashboards"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"

# Provisioning files accept $NAME and ${NAME}; $$ stands for a literal dollar sign.
_ENV_REFERENCE = re.compile(r"\$\$|\$\{(\w+)\}|\$(\w+)")


def env_references(text: str) -> set[str]:
    return {m.group(1) or m.group(2) for m in _ENV_REFERENCE.finditer(text) if m.group(0) != "$$"}


def expand_env(text: str, env: Mapping[str, str]) -> str:
    """Grafana's expansion of environment variables in a provisioning file; unset means empty."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1) or match.group(2), "")

    return _ENV_REFERENCE.sub(replace, text)


def load_yaml_files(folder: Path, env: Mapping[str, str]) -> list[dict[str, Any]]:
    return [
        yaml.safe_load(expand_env(path.read_text(), env)) for path in sorted(folder.glob("*.y*ml"))
    ]


def provisioned_datasources(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Every provisioned data source by uid."""
    return {
        source["uid"]: source
        for document in load_yaml_files(DATASOURCES_DIR, env)
        for source in document.get("datasources", [])
    }


def dashboard_files() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))
    }


def iter_panels(panels: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def connect(datasource: Mapping[str, Any]) -> psycopg.Connection:
    """A connection made from nothing but the provisioned data source's settings."""
    host, _, port = datasource["url"].rpartition(":")
    password = (datasource.get("secureJsonData") or {}).get("password") or None
    return psycopg.connect(
        host=host,
        port=int(port),
        dbname=datasource["jsonData"]["database"],
        user=datasource["user"],
        password=password,
        autocommit=True,
        connect_timeout=10,
    )


@dataclass(frozen=True)
class Result:
    columns: list[str]
    type_names: list[str]
    rows: list[tuple[Any, ...]]

    def column(self, name: str) -> list[Any]:
        index = self.columns.index(name)
        return [row[index] for row in self.rows]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def run_sql(connection: psycopg.Connection, sql: str) -> Result:
    with connection.cursor() as cursor:
        cursor.execute(sql.encode())  # bytes: no client-side placeholder parsing, as Grafana
        description = cursor.description or []
        types = connection.adapters.types
        names = [
            (types.get(column.type_code).name if types.get(column.type_code) else "unknown")
            for column in description
        ]
        return Result([column.name for column in description], names, cursor.fetchall())


# -- the queries a dashboard sends ------------------------------------------------------------


@dataclass(frozen=True)
class PanelQuery:
    """One statement Grafana runs for a dashboard: a panel target (once per repeated value), a
    template variable's options query, or an annotation query."""

    dashboard_uid: str
    kind: str  # "panel", "variable" or "annotation"
    title: str
    raw_sql: str
    format: str
    panel: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    scoped: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def label(self) -> str:
        scope = "".join(f"[{name}={value}]" for name, value in self.scoped.items())
        return f"{self.dashboard_uid}:{self.kind}:{self.title}{scope}"


def resolve_variables(
    dashboard: Mapping[str, Any], query: BackendQuery, execute: Callable[[str], Result]
) -> Dashboard:
    """Run each template variable's query in order, as Grafana does on load, and keep its saved
    selection (All, a list, one value) or fall back to the first option."""
    resolved = Dashboard(variables={})
    for spec in dashboard.get("templating", {}).get("list", []):
        sql = interpolate(spec["query"], resolved, query)
        options = metric_find_values(execute(sql))
        current = (spec.get("current") or {}).get("value")
        if current in (None, "", []) or _missing(current, options):
            current = [options[0]] if spec.get("multi") and options else (options or [""])[0]
        variable = Variable(
            name=spec["name"],
            current=current,
            options=options,
            multi=bool(spec.get("multi")),
            include_all=bool(spec.get("includeAll")),
            all_value=spec.get("allValue") or None,
        )
        resolved = Dashboard(variables={**resolved.variables, spec["name"]: variable})
    return resolved


def _missing(current: str | list[str], options: list[str]) -> bool:
    values = current if isinstance(current, list) else [current]
    return any(value != ALL_VALUE and value not in options for value in values)


def metric_find_values(result: Result) -> list[str]:
    """The SQL data sources' transformMetricFindResponse: `__text`/`__value` pairs when present,
    otherwise every value of every column, first occurrence kept."""
    if "__value" in result.columns:
        return [str(value) for value in result.column("__value")]
    values: list[str] = []
    for row in result.rows:
        for value in row:
            text = str(value)
            if text not in values:
                values.append(text)
    return values


def dashboard_queries(
    uid: str, dashboard: Mapping[str, Any], variables: Dashboard
) -> list[PanelQuery]:
    """Everything the dashboard runs with these variable selections."""
    queries = [
        PanelQuery(uid, "variable", spec["name"], spec["query"], "table")
        for spec in dashboard.get("templating", {}).get("list", [])
    ]
    for annotation in dashboard.get("annotations", {}).get("list", []):
        target = annotation["target"]
        queries.append(
            PanelQuery(uid, "annotation", annotation["name"], target["rawSql"], target["format"])
        )

    for panel in iter_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            for scoped in _repeat_scopes(panel, variables):
                queries.append(
                    PanelQuery(
                        uid,
                        "panel",
                        panel["title"],
                        target["rawSql"],
                        target.get("format", "time_series"),
                        panel=panel,
                        scoped=scoped,
                    )
                )
    return queries


def _repeat_scopes(panel: Mapping[str, Any], variables: Dashboard) -> list[dict[str, str]]:
    """A repeated panel is cloned once per selected value, each clone scoped to its value."""
    name = panel.get("repeat")
    if not name:
        return [{}]
    variable = variables.variables[name]
    if variable.is_all():
        values = list(variable.options)
    elif isinstance(variable.current, list):
        values = variable.current
    else:
        values = [variable.current]
    return [{name: value} for value in values]
