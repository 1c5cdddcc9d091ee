"""The files under deploy/ as data: every PromQL expression they hold, and the metrics it names."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).parents[1] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
RULE_FILES = (PROMETHEUS / "rules.yml", PROMETHEUS / "alerts.yml")
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "equity-daemon.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
COMPOSE = DEPLOY / "docker-compose.yml"

# Metrics the rules and the dashboard use that the daemon cannot export yet, and why. The
# integration test queries them for real as soon as they are there. (None left: the Aave
# health factor comes from the integration test's chain book on anvil.)
NOT_EXPORTED_YET: dict[str, str] = {}
# Series Prometheus makes itself, not the daemon.
PROMETHEUS_OWN = {"up"}
# The Grafana variables the dashboard's queries use, and what stands in for them in a query.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$book": ".+"}


@dataclass(frozen=True)
class Query:
    """One PromQL expression from a deploy file, and the labels each of its series must carry."""

    where: str
    expr: str
    labels: frozenset[str]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def prometheus_config(secrets: Mapping[str, Path]) -> dict[str, Any]:
    """prometheus.yml as it works outside its container: rule files by absolute path, and each
    `/run/secrets/<name>` file it reads (a compose secret) at `secrets[name]`."""
    config: dict[str, Any] = load_yaml(PROMETHEUS / "prometheus.yml")
    config["rule_files"] = [str(PROMETHEUS / name) for name in config["rule_files"]]
    for job in config["scrape_configs"]:
        if "authorization" in job:
            in_container = Path(job["authorization"]["credentials_file"])
            assert in_container.parent == Path("/run/secrets"), in_container
            job["authorization"]["credentials_file"] = str(secrets[in_container.name])
    return config


def rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
    ]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def recording_queries() -> list[Query]:
    """Each recording rule; its level (before the first colon) names the labels it keeps."""
    return [
        Query(
            f"record {rule['record']}",
            rule["expr"],
            frozenset(rule["record"].split(":")[0].split("_")),
        )
        for rule in rules()
        if "record" in rule
    ]


def alert_queries() -> list[Query]:
    """Each alert's expression, as a 0/1 `bool` comparison so that it has series when quiet."""
    return [
        Query(
            f"alert {rule['alert']} ({rule['labels']['severity']})",
            as_bool(rule["expr"]),
            annotation_labels(rule),
        )
        for rule in rules()
        if "alert" in rule
    ]


def as_bool(expr: str) -> str:
    """`x > 1` as `x > bool 1`: every series of `x`, valued 1 where the alert condition holds."""
    return re.sub(r"\s(==|!=|>=|<=|>|<)\s+", r" \1 bool ", expr)


def annotation_labels(rule: dict[str, Any]) -> frozenset[str]:
    text = " ".join(rule.get("annotations", {}).values())
    return frozenset(re.findall(r"\$labels\.([a-zA-Z_]\w*)", text))


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def dashboard_queries(substitute: bool = True) -> list[Query]:
    """Each panel target and each Prometheus annotation; the {{label}}s of a legend (or of an
    annotation's title and text, and its tag keys) name the labels its series must carry."""
    queries = []
    for panel in panels():
        for target in panel["targets"]:
            expr = _substituted(target["expr"]) if substitute else target["expr"]
            labels = frozenset(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            queries.append(Query(f"panel {panel['title']!r} {target['refId']}", expr, labels))
    for annotation in prometheus_annotations():
        expr = _substituted(annotation["expr"]) if substitute else annotation["expr"]
        shown = annotation.get("titleFormat", "") + annotation.get("textFormat", "")
        tags = {key.strip() for key in annotation.get("tagKeys", "").split(",") if key.strip()}
        named = frozenset(re.findall(r"\{\{\s*(\w+)\s*\}\}", shown)) | tags
        queries.append(Query(f"annotation {annotation['name']!r}", expr, named))
    return queries


def prometheus_annotations() -> list[dict[str, Any]]:
    """The dashboard's Prometheus annotations (not Grafana's built-in one)."""
    return [
        annotation
        for annotation in dashboard()["annotations"]["list"]
        if annotation["datasource"]["type"] == "prometheus"
    ]


def _substituted(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (a small lexer: enough for these files)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        name, call = match.groups()
        if call is None and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def exposed_names(exposition: str) -> set[str]:
    """The sample names in a Prometheus text exposition."""
    return {
        re.split(r"[{ ]", line, maxsplit=1)[0]
        for line in exposition.splitlines()
        if line and not line.startswith("#")
    }
