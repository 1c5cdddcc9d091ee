"""A real Prometheus scraping a real daemon, and a real Alertmanager inhibiting alerts.

Prometheus loads deploy/prometheus's rule files and scrapes, every second, a daemon running the
README's demo book (config/demo.toml) beside a manual-venue book that adds what the demo cannot
show: debt, an in-transit transfer, a quote source that fails, a webhook that delivers; and a
chain book reading an Aave position on anvil (our contracts, tests/chain.py), which exports the
health factor the alert rules and the dashboard read. Then every
recording rule, every alert expression and every dashboard query is asked through Prometheus's
HTTP API and must return series with the labels its rule or panel names. Metrics no venue can
produce yet (tests/deploy.py, NOT_EXPORTED_YET) are the only ones allowed to be missing.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import deploy
from tests.chain import Anvil, Chain, compile_contracts, require_anvil
from tests.integration.processes import DaemonProcess, Receiver, free_port, wait_for
from tests.integration.test_daemon_process import edit
from tests.tools import require_tool
from tests.venues.conftest import World, deploy_world

DEMO = Path(__file__).parents[2] / "config" / "demo.toml"
SECRET = "webhook-signing-secret"
SCRAPES = 5  # scrapes to wait for after the last change, so rate() and increase() have two


def treasury(usdt: str) -> str:
    """The manual book: cash, a stablecoin, a loan and a transfer on its way."""
    return f"""
[[positions]]
account = "cold"
asset = "USDT"
amount = "{usdt}"

[[positions]]
asset = "GHO"
amount = "50000"

[[positions]]
asset = "USDT"
amount = "20000"
kind = "debt"

[[positions]]
asset = "ETH"
amount = "1"
kind = "in_transit"

[[quotes]]
base = "GHO"
quote = "USDT"
rate = "0.998"

[[quotes]]
base = "ETH"
quote = "USDT"
rate = "3000"

[[reported]]
account = "cold"
amount = "{usdt}"
currency = "USDT"
label = "custodian statement"
"""


def treasury_book(path: Path, hook_port: int) -> str:
    return f"""
[books.treasury]
share_class = "USDT"
threshold_percent = 0.1

[[books.treasury.venues]]
kind = "manual"
name = "treasury"
path = "{path}"
interval_seconds = 0.5

[[books.treasury.prices]]
base = "GHO"
quote = "USDT"
sources = ["treasury"]
peg = 1  # a stablecoin: its depeg (-20 bp at 0.998) is exported

[[books.treasury.prices]]
base = "ETH"
quote = "USDT"
sources = ["treasury"]

# the file quotes no DAI: a quote failure every cycle (no DAI is held, equity stays complete)
[[books.treasury.prices]]
base = "DAI"
quote = "USDT"
sources = ["treasury"]

[[books.treasury.webhooks]]
name = "pager"
url = "http://127.0.0.1:{hook_port}/hook"
secret = "{SECRET}"
max_backoff_seconds = 1
"""


@dataclass
class Server:
    """A Prometheus or Alertmanager binary on a free loopback port, its log in a file."""

    command: list[str]
    port: int
    log: Path
    ready_path: str
    process: subprocess.Popen[bytes] | None = field(default=None)

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT)
        wait_for(self.ready, 20, f"{self.command[0]} to be ready")

    def ready(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, self.log.read_text()
        try:
            return httpx.get(self.url(self.ready_path), timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def api(self, path: str, **params: str) -> Any:
        reply = httpx.get(self.url(path), params=params, timeout=10)
        body = reply.json()
        assert reply.status_code == 200, body
        # Prometheus wraps its answers in {"status", "data"}; Alertmanager's v2 API does not
        return body["data"] if isinstance(body, dict) else body

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def scrape_job(name: str, port: int) -> dict[str, Any]:
    return {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}


def prometheus_server(tmp_path: Path, *jobs: dict[str, Any]) -> Server:
    binary = require_tool("prometheus", "prometheus")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(path) for path in deploy.RULE_FILES],
                "scrape_configs": list(jobs),
            }
        )
    )
    port = free_port()
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    return Server(command, port, tmp_path / "prometheus.log", "/-/ready")


def staking_book(url: str, world: World) -> str:
    """An ETH book of the deployed Aave position: 412 WETH supplied, 267.5 owed (HF 1.27)."""
    return f"""
[books.staking]
share_class = "ETH"

[[books.staking.venues]]
kind = "chain"
name = "anvil"
chain = "anvil"
chain_id = 31337
rpc = ["{url}"]
confirmations = 0
interval_seconds = 0.5
aave_markets = {{ core = "{world.pool.address}" }}

[[books.staking.venues.feeds]]
base = "ETH"
quote = "USD"
address = "{world.eth_usd.address}"
heartbeat_seconds = 3600

[[books.staking.venues.holdings]]
address = "{world.fund}"
aave = ["core"]

[[books.staking.prices]]
base = "WETH"
quote = "ETH"
fixed = 1

[[books.staking.prices]]
base = "ETH"
quote = "USD"
sources = ["anvil"]
"""


def anvil_world(anvil: Anvil) -> tuple[str, World]:
    """Start `anvil` and deploy our contracts on it: its URL, and what they hold."""
    url = anvil.start()
    chain = Chain(url)
    try:
        return url, deploy_world(chain, compile_contracts())
    finally:
        chain.close()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[DaemonProcess, Server, Path, Receiver]]:
    require_tool("prometheus", "prometheus")
    anvil = Anvil(require_anvil())
    receiver = Receiver(free_port(), SECRET)
    book = tmp_path / "treasury.toml"
    edit(book, treasury("100000"))
    config = tmp_path / "equity.toml"
    try:
        url, world = anvil_world(anvil)
        config.write_text(
            DEMO.read_text() + treasury_book(book, receiver.port) + staking_book(url, world)
        )
        daemon = DaemonProcess(config, free_port(), tmp_path / "daemon.log")
        prometheus = prometheus_server(tmp_path, scrape_job("equity-daemon", daemon.port))
        try:
            yield daemon, prometheus, book, receiver
        finally:
            prometheus.stop()
            daemon.kill()
    finally:
        receiver.stop()
        anvil.close()


def vector(prometheus: Server, expr: str) -> list[dict[str, Any]]:
    data = prometheus.api("/api/v1/query", query=expr)
    assert data["resultType"] == "vector", (expr, data)
    result: list[dict[str, Any]] = data["result"]
    return result


def test_every_rule_and_panel_query_has_data_from_a_real_daemon(
    stack: tuple[DaemonProcess, Server, Path, Receiver],
) -> None:
    daemon, prometheus, book, receiver = stack
    receiver.start()
    daemon.start(EQUITY_DAEMON_HISTORY_PATH=str(book.parent / "history.sqlite3"))
    wait_for(lambda: daemon.get("/readyz").status_code == 200, 15, "the daemon to be ready")
    prometheus.start()
    # the alert counters are there at 0 before any alert: its increase is seen (the annotation)
    quiet = 'equity_daemon_events_total{book="treasury", kind="threshold"} == 0'
    wait_for(lambda: bool(vector(prometheus, quiet)), 15, "a scrape before the alert")
    edit(book, treasury("101000"))  # 1 %: a threshold event, delivered by webhook
    wait_for(lambda: len(receiver.received) == 1, 15, "the webhook")

    def scraped_since_delivery() -> bool:
        counted = vector(prometheus, "count_over_time(equity_daemon_webhook_deliveries_total[1m])")
        return bool(counted) and int(counted[0]["value"][1]) >= SCRAPES

    wait_for(scraped_since_delivery, 20, f"{SCRAPES} scrapes after the delivery")

    groups = prometheus.api("/api/v1/rules")["groups"]
    loaded = [rule for group in groups for rule in group["rules"]]
    assert len(loaded) == len(deploy.rules())
    assert {(rule["name"], rule["health"]) for rule in loaded} == {
        (rule["name"], "ok") for rule in loaded
    }, [rule.get("lastError") for rule in loaded]

    present = set(prometheus.api("/api/v1/label/__name__/values"))
    absent = {name: why for name, why in deploy.NOT_EXPORTED_YET.items() if name not in present}
    rules = [
        deploy.Query(query.where, query.expr, query.labels | {"job", "instance"})
        for query in deploy.recording_queries() + deploy.alert_queries()
    ]
    skipped: dict[str, set[str]] = {}
    for query in rules + deploy.dashboard_queries():
        missing = deploy.metric_names(query.expr) - present
        if missing:
            assert missing <= set(absent), f"{query.where} uses {missing}, which do not exist"
            skipped[query.where] = missing
            continue
        result = vector(prometheus, query.expr)
        assert result, f"{query.where}: no data for {query.expr}"
        for series in result:
            assert query.labels <= set(series["metric"]), (query.where, series["metric"])
    assert set().union(*skipped.values()) == set(absent)

    (health,) = vector(prometheus, "equity_daemon_aave_health_factor")
    assert health["metric"]["market"] == "core"
    assert float(health["value"][1]) == pytest.approx(1.27)  # above the alert's 1.1

    # a healthy demo trips nothing, not even a pending alert
    assert vector(prometheus, "ALERTS") == []
    assert daemon.terminate()[0] == 0


def test_prometheus_scrapes_the_protected_metrics_with_the_shipped_authorization(
    tmp_path: Path,
) -> None:
    """With a bearer token set, /metrics asks for it: the equity-daemon job of
    deploy/prometheus/prometheus.yml (its `authorization`, the token in a file) is let in, and
    a job without it sees 401 and `up == 0`, never a figure."""
    require_tool("prometheus", "prometheus")
    token = tmp_path / "http_token"
    token.write_text("scrape-me-not-anonymously\n")  # as a secret file is written: a newline
    book = tmp_path / "ops.toml"
    edit(book, '[[positions]]\nasset = "USDT"\namount = "250000"\n')
    config = tmp_path / "equity.toml"
    config.write_text(
        f"""
history_path = "{tmp_path / "history.sqlite3"}"
[http]
bearer_token_file = "{token}"
[books.ops]
share_class = "USDT"
venues = [{{kind = "manual", name = "ops", path = "{book}", interval_seconds = 0.5}}]
"""
    )
    daemon = DaemonProcess(config, free_port(), tmp_path / "daemon.log")
    shipped = deploy.prometheus_config({"http_token": token})
    (job,) = [job for job in shipped["scrape_configs"] if job["job_name"] == "equity-daemon"]
    job["static_configs"] = scrape_job("", daemon.port)["static_configs"]
    prometheus = prometheus_server(tmp_path, job, scrape_job("anonymous", daemon.port))
    try:
        daemon.start()
        wait_for(lambda: daemon.get("/readyz").status_code == 200, 15, "the daemon to be ready")
        assert daemon.get("/metrics").status_code == 401
        prometheus.start()

        def targets() -> dict[str, dict[str, Any]]:
            found = prometheus.api("/api/v1/targets")["activeTargets"]
            return {target["labels"]["job"]: target for target in found}

        health = {"equity-daemon": "up", "anonymous": "down"}
        wait_for(
            lambda: {name: t["health"] for name, t in targets().items()} == health,
            20,
            "both jobs scraped",
        )
        assert "401" in targets()["anonymous"]["lastError"]
        assert targets()["equity-daemon"]["lastError"] == ""
        (equity,) = vector(prometheus, "equity_daemon_equity")
        assert equity["metric"]["job"] == "equity-daemon"  # the anonymous job saw nothing
        assert float(equity["value"][1]) == 250_000
        up = {s["metric"]["job"]: s["value"][1] for s in vector(prometheus, "up")}
        assert up == {"equity-daemon": "1", "anonymous": "0"}
        assert daemon.terminate()[0] == 0
    finally:
        prometheus.stop()
        daemon.kill()


# --- Alertmanager -------------------------------------------------------------------------------


def alert(name: str, severity: str, instance: str, **labels: str) -> dict[str, Any]:
    return {
        "labels": {
            "alertname": name,
            "severity": severity,
            "job": "equity-daemon",
            "instance": instance,
            **labels,
        }
    }


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Server]:
    binary = require_tool("prometheus-alertmanager", "prometheus-alertmanager")
    port = free_port()
    command = [
        binary,
        f"--config.file={deploy.ALERTMANAGER}",
        f"--storage.path={tmp_path / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip: a single instance
        "--log.level=warn",
    ]
    server = Server(command, port, tmp_path / "alertmanager.log", "/-/ready")
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_the_inhibitions_silence_only_what_they_should(alertmanager: Server) -> None:
    venue = {"book": "basis", "venue": "okx"}
    quiet = [  # (alert, inhibited)
        (alert("EquityDaemonDown", "page", "a:9731"), False),
        (alert("EquityVenueStale", "ticket", "a:9731", **venue), True),  # its daemon is down
        (alert("EquityVenueStale", "ticket", "b:9731", **venue), False),  # another daemon
        (alert("EquityLargeMove", "page", "a:9731", book="basis", currency="USDT"), False),
        (alert("EquityUnknown", "page", "b:9731", book="basis"), False),
        (alert("EquitySnapshotIncomplete", "ticket", "b:9731", book="basis"), True),
        (alert("EquitySnapshotIncomplete", "ticket", "b:9731", book="carry"), False),
        (alert("EquityDepeg", "page", "a:9731", book="basis", asset="GHO"), False),
        (alert("EquityDepeg", "ticket", "a:9731", book="basis", asset="GHO"), True),  # its page
        (alert("EquityDepeg", "ticket", "a:9731", book="basis", asset="USDe"), False),
    ]
    alerts = [item for item, _ in quiet]
    posted = httpx.post(alertmanager.url("/api/v2/alerts"), json=alerts, timeout=10)
    assert posted.status_code == 200, posted.text
    expected = {frozenset(item["labels"].items()): inhibited for item, inhibited in quiet}

    def states() -> dict[frozenset[tuple[str, str]], bool]:
        found = alertmanager.api("/api/v2/alerts")
        return {
            frozenset(item["labels"].items()): bool(item["status"]["inhibitedBy"]) for item in found
        }

    try:
        wait_for(lambda: states() == expected, 10, "the inhibitions")
    except AssertionError:
        assert states() == expected  # shows which alert is wrong
