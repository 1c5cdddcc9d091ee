"""deploy/: the systemd unit, the Prometheus rules, Alertmanager, Grafana and compose files.

Each passes its own tool's checks where Debian has the tool (systemd-analyze, promtool, amtool);
Grafana and Docker are not in Debian, so their files are checked as data: every path and port they
refer to exists and agrees. tests/integration/test_prometheus.py runs the queries for real.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from prometheus_client import generate_latest

from tests import deploy
from tests.test_metrics import basis_view, incomplete_view, scrape_registry
from tests.tools import require_tool

UNIT = Path(__file__).parents[1] / "deploy" / "equity-daemon.service"


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


def test_the_prometheus_config_passes_promtool_with_its_rule_files() -> None:
    checked = promtool("check", "config", "prometheus.yml")
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
    metrics = scrape_registry([basis_view(), incomplete_view()], {"pager": 1})
    metrics.prepare(["lido", "okx", "bybit"])
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
    assert used - allowed == set(deploy.NOT_EXPORTED_YET)  # each exception is still needed


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
