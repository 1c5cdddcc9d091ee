"""deploy/: the systemd unit, the Prometheus rules, Alertmanager, Grafana and compose files.

Each passes its own tool's checks where Debian has the tool (systemd-analyze, promtool, amtool);
Grafana and Docker are not in Debian, so their files are checked as data: every path and port they
refer to exists and agrees. tests/integration/test_prometheus.py runs the queries for real;
tests/integration/test_image.py builds and runs the Docker image.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import generate_latest

from equity_daemon import healthcheck
from equity_daemon.cli import EXIT_USAGE
from equity_daemon.model import HealthFactor, Reconciliation, ShareClass, VenueState
from equity_daemon.pegs import PegCheck
from equity_daemon.settings import HttpSettings
from equity_daemon.status_page.format import PLACES
from tests import deploy
from tests.test_metrics import basis_view, incomplete_view, scrape_registry
from tests.tools import require_tool

ROOT = Path(__file__).parents[1]
UNIT = ROOT / "deploy" / "equity-daemon.service"


def systemd_analyze() -> str:
    return require_tool("systemd-analyze", "systemd")


def local_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this interpreter, so `verify` can find the binary."""
    text = re.sub(
        r"^ExecStart=\S+",
        f"ExecStart={sys.executable} -m equity_daemon",
        UNIT.read_text(),
        flags=re.M,
    )
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    return copy


def test_the_unit_verifies(tmp_path: Path) -> None:
    done = subprocess.run(
        [systemd_analyze(), "verify", str(local_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")


def test_the_unit_is_hardened(tmp_path: Path) -> None:
    done = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", str(local_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    exposure = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert exposure is not None, done.stdout + done.stderr
    assert float(exposure.group(1)) <= 2.5


def test_the_unit_is_a_notify_service_with_a_watchdog() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "LoadCredential="):
        assert line in text


def unit_lines() -> list[str]:
    return [line.strip() for line in UNIT.read_text().splitlines() if not line.startswith("#")]


def test_a_configuration_error_is_not_restarted_every_5_seconds() -> None:
    # exit 2 is bad usage or configuration: a restart cannot fix it
    assert f"RestartPreventExitStatus={EXIT_USAGE}" in unit_lines()
    assert "Restart=on-failure" in unit_lines()


def test_the_unit_starts_with_whatever_secrets_are_installed() -> None:
    # one LoadCredential= per file failed the start for any file not installed, named by the
    # configuration or not; the folder loaded whole holds what the configuration names
    loads = [line for line in unit_lines() if line.startswith("LoadCredential=")]
    assert loads == ["LoadCredential=secrets:/etc/equity-daemon/secrets"]


def test_the_unit_points_at_no_documentation_the_install_does_not_create() -> None:
    # Documentation=file:///opt/equity-daemon/README.md: pip installs no README there
    documentation = [line for line in unit_lines() if line.startswith("Documentation=")]
    assert not [line for line in documentation if "file:" in line]


# --- Prometheus ---------------------------------------------------------------------------------


def promtool(*args: str) -> str:
    tool = require_tool("promtool", "prometheus")
    done = subprocess.run(
        [tool, *args], cwd=deploy.PROMETHEUS, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_rules_pass_promtool_checks_and_their_unit_tests() -> None:
    promtool("check", "rules", "rules.yml", "alerts.yml")
    assert "SUCCESS" in promtool("test", "rules", "alerts_test.yml")


def test_the_prometheus_config_passes_promtool_with_its_rule_files(tmp_path: Path) -> None:
    # promtool checks that the token file exists: give it compose's, where compose mounts it
    secrets = {name: host_path(secret["file"]) for name, secret in compose()["secrets"].items()}
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps(deploy.prometheus_config(secrets)))  # JSON is YAML
    checked = promtool("check", "config", str(config))
    assert "2 rule files found" in checked


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    cases: dict[str, set[bool]] = {}
    for test in deploy.load_yaml(deploy.PROMETHEUS / "alerts_test.yml")["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
    alerts = {rule["alert"] for rule in deploy.rules() if "alert" in rule}
    assert {name: cases.get(name) for name in alerts} == {name: {True, False} for name in alerts}


def test_severities_page_on_equity_and_ticket_the_rest() -> None:
    severity: dict[str, set[str]] = {}
    for rule in deploy.rules():
        if "alert" in rule:
            severity.setdefault(rule["labels"]["severity"], set()).add(rule["alert"])
    assert severity == {
        "page": {
            "EquityDaemonDown",
            "EquityUnknown",
            "EquitySnapshotStale",
            "EquityLargeMove",
            "EquityAaveHealthFactorLow",
            "EquityDepeg",  # above 2 %
        },
        "ticket": {
            "EquitySnapshotIncomplete",
            "EquityVenueDown",
            "EquityVenueStale",
            "EquityPriceStale",
            "EquityDepeg",  # above 0.5 %, inhibited by the page
            "EquityWebhookBacklog",
            "EquityWebhookDeadLetters",
            "EquityHistoryUnwritten",
            "EquityReconciliationDrift",
        },
    }


def full_exposition() -> str:
    """A scrape with every family the daemon has, counters included."""
    basis = basis_view()
    assert basis.snapshot is not None
    drift = Reconciliation(
        "okx", "main", "totalEq", Decimal(100), Decimal(101), Decimal(101), "USD"
    )
    peg = PegCheck("stETH", "ETH", Decimal(1), Decimal("0.997"), "curve", Decimal(-30), False)
    basis = replace(basis, snapshot=replace(basis.snapshot, reconciliations=(drift,), pegs=(peg,)))
    lido, okx = basis.venues
    assert lido.last_good is not None
    aave = replace(
        lido.last_good,
        health=(HealthFactor("core", "0xa", Decimal("1.3"), Decimal(13), Decimal(10), "USD"),),
    )
    basis = replace(basis, venues=(VenueState(aave, aave), okx))
    metrics = scrape_registry([basis, incomplete_view()], {"pager": 1})
    metrics.prepare(["lido", "okx", "bybit"], ["pager"])
    metrics.failed("okx", "timeout")
    metrics.fetched("okx", 0.3)
    metrics.events.labels("basis", "threshold").inc()
    metrics.webhook_deliveries.labels("pager", "delivered").inc()
    metrics.quote_errors.labels("okx").inc()
    metrics.cycles.inc()
    return generate_latest(metrics.registry).decode()


def test_the_rules_and_the_dashboard_only_use_metrics_that_exist() -> None:
    exported = deploy.exposed_names(full_exposition())
    used = {
        name
        for query in deploy.recording_queries()
        + deploy.alert_queries()
        + deploy.dashboard_queries()
        for name in deploy.metric_names(query.expr)
    }
    assert "equity_daemon_equity" in used
    allowed = exported | deploy.recorded_names() | deploy.PROMETHEUS_OWN
    assert used - allowed <= set(deploy.NOT_EXPORTED_YET)
    assert set(deploy.NOT_EXPORTED_YET) <= used  # no exception outlives its use


def test_the_metric_name_lexer() -> None:
    names = deploy.metric_names(
        'histogram_quantile(0.95, sum by (venue, le) (rate(a_bucket{venue=~"x|y"}[5m])))'
        " / on (book) group_left(currency) b:c:d offset 1h > bool 1e3 or up unless Inf"
    )
    assert names == {"a_bucket", "b:c:d", "up"}


def test_alert_expressions_become_zero_one_series() -> None:
    assert deploy.as_bool('up{job="x"} == 0') == 'up{job="x"} == bool 0'
    assert deploy.as_bool("time() - a > 900") == "time() - a > bool 900"
    assert deploy.as_bool('a{kind!="x"} < 1.1') == 'a{kind!="x"} < bool 1.1'


# --- Alertmanager -------------------------------------------------------------------------------


def amtool(*args: str) -> str:
    tool = require_tool("amtool", "prometheus-alertmanager")
    done = subprocess.run(
        [tool, *args], cwd=deploy.ALERTMANAGER.parent, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_alertmanager_config_passes_amtool() -> None:
    assert "SUCCESS" in amtool("check-config", deploy.ALERTMANAGER.name)


def test_pages_and_tickets_reach_their_own_receivers() -> None:
    for labels, receiver in [
        (["severity=page", "alertname=EquityLargeMove"], "page"),
        (["severity=ticket", "alertname=EquityVenueStale"], "ticket"),
        (["alertname=Unlabelled"], "ticket"),
    ]:
        routed = amtool(
            "config", "routes", "test", f"--config.file={deploy.ALERTMANAGER.name}", *labels
        )
        assert routed.split() == [receiver], labels


def test_daemon_down_inhibits_only_its_own_staleness_alerts() -> None:
    config = deploy.load_yaml(deploy.ALERTMANAGER)
    (down,) = [
        rule
        for rule in config["inhibit_rules"]
        if rule["source_matchers"] == ['alertname="EquityDaemonDown"']
    ]
    assert {"job", "instance"} <= set(down["equal"])
    (target,) = down["target_matchers"]
    matched = re.fullmatch(r'alertname=~"(.*)"', target)
    assert matched is not None
    inhibited = set(matched.group(1).split("|"))
    alerts = {rule["alert"]: rule for rule in deploy.rules() if "alert" in rule}
    assert inhibited <= set(alerts)
    assert {"EquitySnapshotStale", "EquityVenueStale", "EquityPriceStale"} <= inhibited
    assert alerts["EquityDaemonDown"]["labels"]["severity"] == "page"
    for name in inhibited:  # no aggregation: the daemon's job and instance labels stay on
        assert not re.search(
            r"\b(sum|avg|min|max|count|group|topk|bottomk)\b", alerts[name]["expr"]
        )


def test_the_receivers_are_loopback_placeholders() -> None:
    config = deploy.load_yaml(deploy.ALERTMANAGER)
    urls = [hook["url"] for receiver in config["receivers"] for hook in receiver["webhook_configs"]]
    assert {receiver["name"] for receiver in config["receivers"]} == {"page", "ticket"}
    assert urls
    assert {urlsplit(url).hostname for url in urls} == {"127.0.0.1"}


# --- Grafana ------------------------------------------------------------------------------------


def test_the_dashboard_is_well_formed() -> None:
    board = deploy.dashboard()
    uid = deploy.load_yaml(deploy.DATASOURCES)["datasources"][0]["uid"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    assert board["uid"] == "equity-daemon"
    (variable,) = board["templating"]["list"]
    assert (variable["name"], variable["datasource"]["uid"]) == ("book", uid)
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        covered = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered
    for panel in deploy.panels():
        assert panel["datasource"]["uid"] == uid
        refs = [target["refId"] for target in panel["targets"]]
        assert refs, panel["title"]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid
            assert set(re.findall(r"\$\w+", target["expr"])) <= set(deploy.GRAFANA_VARIABLES)
            assert target["legendFormat"], f"{panel['title']}: the legend names its labels"


def test_the_dashboard_shows_what_the_fund_needs() -> None:
    used = {name for q in deploy.dashboard_queries() for name in deploy.metric_names(q.expr)}
    for metric in [
        "equity_daemon_equity",
        "equity_daemon_venue_equity",
        "equity_daemon_asset_equity",
        "equity_daemon_debt",
        "equity_daemon_excluded_value",
        "equity_daemon_aave_health_factor",
        "equity_daemon_depeg_basis_points",
        "book_venue:equity_daemon_venue_data_age:seconds",
        "equity_daemon_events_total",
    ]:
        assert metric in used


def panel(title: str, kind: str = "timeseries") -> dict[str, Any]:
    (found,) = [p for p in deploy.panels() if (p["title"], p["type"]) == (title, kind)]
    return found


def test_the_dashboard_opens_on_single_values_of_each_book() -> None:
    top = sorted(
        (p for p in deploy.panels() if p["gridPos"]["y"] == 1), key=lambda p: p["gridPos"]["x"]
    )
    assert [(p["title"], p["type"]) for p in top] == [
        ("Equity", "stat"),
        ("24 h change", "stat"),
        ("Complete", "stat"),
        ("Venues up", "stat"),
    ]
    exprs = {p["title"]: [t["expr"] for t in p["targets"]] for p in top}
    assert exprs["24 h change"] == [
        'delta(book:equity_daemon_equity:complete{book=~"$book"}[1d])',  # complete figures only
        'book:equity_daemon_equity:change_ratio1d{book=~"$book"}',
    ]
    # "Complete" names each state; an unknown equity (NaN) reads "unknown", never a number
    mappings = panel("Complete", "stat")["fieldConfig"]["defaults"]["mappings"]
    assert {key: value["text"] for key, value in mappings[0]["options"].items()} == {
        "0": "incomplete",
        "1": "complete",
    }
    (nan,) = panel("Equity", "stat")["fieldConfig"]["defaults"]["mappings"]
    assert (nan["options"]["match"], nan["options"]["result"]["text"]) == ("nan", "unknown")
    # "venues up" N of M: the value counts the venues up, the name says how many there are
    (venues,) = panel("Venues up", "stat")["targets"]
    assert "count_values" in venues["expr"]
    assert venues["legendFormat"] == "{{book}}: up of {{venues}}"


MONEY = {
    "equity_daemon_equity",
    "equity_daemon_assets",
    "equity_daemon_debt",
    "equity_daemon_unrealized_pnl",
    "equity_daemon_venue_equity",
    "equity_daemon_asset_equity",
    "equity_daemon_excluded_value",
    "equity_daemon_price",
    "book:equity_daemon_equity:complete",
}


def grafana_regex(pattern: str) -> re.Pattern[str]:
    """A matcher's `/regex/` as Grafana compiles it (JavaScript: the same syntax here)."""
    matched = re.fullmatch(r"/(.*)/", pattern)
    assert matched is not None, pattern
    return re.compile(matched.group(1))


def test_money_is_shown_in_each_books_share_class() -> None:
    money_panels = [
        p
        for p in deploy.panels()
        if any(deploy.metric_names(t["expr"]) & MONEY for t in p["targets"])
    ]
    assert len(money_panels) == 8  # two stats; equity, its parts, breakdowns, excluded, prices
    for shown in money_panels:
        for target in shown["targets"]:
            if deploy.metric_names(target["expr"]) & MONEY:
                assert target["legendFormat"].endswith("({{currency}})"), shown["title"]
        units = {}
        for override in shown["fieldConfig"]["overrides"]:
            assert override["matcher"]["id"] == "byRegexp"
            names = grafana_regex(override["matcher"]["options"])
            properties = {item["id"]: item["value"] for item in override["properties"]}
            for currency in ShareClass:
                if names.search(f"basis {currency.value} ({currency.value})"):
                    units[currency.value] = (properties["unit"], properties["decimals"])
            assert not names.search("basis (BTC)")
        # USDT to the cent, ETH to 4 places: as the status page shows them
        assert units == {
            currency: (f"suffix:{currency}", places) for currency, places in PLACES.items()
        }, shown["title"]
        assert set(PLACES) == {currency.value for currency in ShareClass}


def test_threshold_alerts_are_annotations_on_the_equity_chart() -> None:
    (alerts,) = deploy.prometheus_annotations()
    uid = deploy.load_yaml(deploy.DATASOURCES)["datasources"][0]["uid"]
    assert alerts["datasource"] == {"type": "prometheus", "uid": uid}
    assert alerts["enable"] is True
    assert deploy.metric_names(alerts["expr"]) == {"equity_daemon_events_total"}
    assert 'kind="threshold"' in alerts["expr"]
    assert 'book=~"$book"' in alerts["expr"]
    assert alerts["filter"] == {"exclude": False, "ids": [panel("Equity")["id"]]}
    assert alerts["tagKeys"] == "book"
    # the window outlasts the step, so no alert falls between two evaluations
    window = re.search(r"\[(\d+)m\]", alerts["expr"])
    assert window is not None
    assert int(window.group(1)) > int(alerts["step"].removesuffix("m"))


# --- docker compose -----------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = deploy.load_yaml(deploy.COMPOSE)
    return loaded


def host_path(text: str) -> Path:
    """A compose path: `${VAR:-default}` taken at its default, relative to the compose file."""
    text = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)
    assert "$" not in text, f"{text}: give every variable a default"
    return (deploy.COMPOSE.parent / text).resolve()


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path (or named volume) of a service's volumes."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        found[target] = source
    return found


def in_container(service: dict[str, Any], path: str) -> Path:
    """The repository file a service sees at `path`, through its bind mounts."""
    for target, source in sorted(mounts(service).items(), key=lambda item: -len(item[0])):
        if path == target or path.startswith(target.rstrip("/") + "/"):
            assert source.startswith("."), f"{path} is in the named volume {source}"
            return host_path(source) / Path(path).relative_to(target)
    raise AssertionError(f"nothing is mounted at {path}")


def image_config_path() -> str:
    """Where the image reads its configuration: the Dockerfile's `EQUITY_DAEMON_CONFIG`."""
    (path,) = re.findall(r"EQUITY_DAEMON_CONFIG=(\S+)", (ROOT / "Dockerfile").read_text())
    return str(path)


def flag(service: dict[str, Any], name: str) -> str:
    args: list[str] = service["command"]
    (value,) = [arg.split("=", 1)[1] for arg in args if arg.startswith(f"{name}=")]
    return value


def listen_port(service: dict[str, Any]) -> int:
    return int(flag(service, "--web.listen-address").rsplit(":", 1)[1])


def test_every_path_in_compose_exists() -> None:
    spec = compose()
    services = spec["services"]
    assert set(services) == {"equity-daemon", "prometheus", "alertmanager", "grafana"}
    assert (host_path(services["equity-daemon"]["build"]) / "Dockerfile").is_file()
    for name, service in services.items():
        for source in mounts(service).values():
            if source.startswith("."):
                assert host_path(source).exists(), f"{name}: {source}"
            else:
                assert source in spec["volumes"], f"{name}: volume {source}"
        for secret in service.get("secrets", []):
            assert secret in spec["secrets"], f"{name}: secret {secret}"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        for dependency in service.get("depends_on", []):
            assert dependency in services
    for secret in spec["secrets"].values():
        assert host_path(secret["file"]).is_file()


def test_compose_ports_and_targets_agree() -> None:
    services = compose()["services"]
    daemon, prometheus = services["equity-daemon"], services["prometheus"]
    alertmanager, grafana = services["alertmanager"], services["grafana"]

    # the daemon: its configuration, port, history volume, token secret and healthcheck
    assert "command" not in daemon  # the image's own `run` on its configuration file
    config = tomllib.loads(in_container(daemon, image_config_path()).read_text())
    port = config.get("http", {}).get("port", HttpSettings.model_fields["port"].default)
    assert f"127.0.0.1:{port}:{port}" in daemon["ports"]
    assert not mounts(daemon)[str(Path(config["history_path"]).parent)].startswith(".")
    assert config["http"]["bearer_token_file"] in daemon["secrets"]
    env = daemon.get("environment", {})
    assert int(env.get("EQUITY_DAEMON_HTTP__PORT", healthcheck.DEFAULT_PORT)) == port

    # Prometheus: scrapes the daemon's port, alerts the Alertmanager's, loads its rule files
    prometheus_config_path = in_container(prometheus, flag(prometheus, "--config.file"))
    assert prometheus_config_path == deploy.PROMETHEUS / "prometheus.yml"
    prometheus_config = deploy.load_yaml(prometheus_config_path)
    (job,) = [j for j in prometheus_config["scrape_configs"] if j["job_name"] == "equity-daemon"]
    assert job["static_configs"] == [{"targets": [f"equity-daemon:{port}"]}]
    # ... with the daemon's token (its /metrics asks for it), from the daemon's own secret
    assert not config["http"].get("open_metrics", False)
    assert job["authorization"].get("type", "Bearer") == "Bearer"
    credentials = Path(job["authorization"]["credentials_file"])
    assert credentials.parent == Path("/run/secrets")
    assert credentials.name == config["http"]["bearer_token_file"]
    assert credentials.name in prometheus["secrets"]
    (alerting,) = prometheus_config["alerting"]["alertmanagers"]
    assert alerting["static_configs"] == [
        {"targets": [f"alertmanager:{listen_port(alertmanager)}"]}
    ]
    config_dir = Path(flag(prometheus, "--config.file")).parent
    for rule_file in prometheus_config["rule_files"]:
        assert in_container(prometheus, str(config_dir / rule_file)) in deploy.RULE_FILES
    prometheus_port = listen_port(prometheus)
    assert f"127.0.0.1:{prometheus_port}:{prometheus_port}" in prometheus["ports"]
    am_port = listen_port(alertmanager)
    assert f"127.0.0.1:{am_port}:{am_port}" in alertmanager["ports"]
    assert in_container(alertmanager, flag(alertmanager, "--config.file")) == deploy.ALERTMANAGER

    # Grafana: provisioned datasource on Prometheus's port, dashboards where the provider looks
    provisioning = "/etc/grafana/provisioning"
    datasources = in_container(grafana, f"{provisioning}/datasources/prometheus.yml")
    assert datasources == deploy.DATASOURCES
    (datasource,) = deploy.load_yaml(datasources)["datasources"]
    assert datasource["url"] == f"http://prometheus:{prometheus_port}"
    providers = in_container(grafana, f"{provisioning}/dashboards/equity-daemon.yml")
    (provider,) = deploy.load_yaml(providers)["providers"]
    assert deploy.DASHBOARD.parent == in_container(grafana, provider["options"]["path"])
    grafana_env = grafana["environment"]
    home = in_container(grafana, grafana_env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home == deploy.DASHBOARD
    password = Path(grafana_env["GF_SECURITY_ADMIN_PASSWORD__FILE"])
    assert password.parent == Path("/run/secrets")
    assert password.name in grafana["secrets"]


def test_the_compose_daemon_config_is_valid(tmp_path: Path) -> None:
    """`check-config` on it, with the compose secrets where the daemon looks for them."""
    spec = compose()
    daemon = spec["services"]["equity-daemon"]
    for name in daemon["secrets"]:
        (tmp_path / name).write_bytes(host_path(spec["secrets"][name]["file"]).read_bytes())
    config = in_container(daemon, image_config_path())
    done = subprocess.run(
        [sys.executable, "-m", "equity_daemon", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CREDENTIALS_DIRECTORY": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok: 1 book(s), 1 venue(s)" in done.stdout
