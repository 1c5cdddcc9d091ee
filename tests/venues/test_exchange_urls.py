"""Pointing ccxt at another host: every REST and websocket URL moves, every path stays."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt
import ccxt.pro as ccxtpro
import pytest

from equity_daemon.venues.exchange_urls import check_base_url, point_at, rewrite

BASE = "http://127.0.0.1:18080"


def strings(urls: Any) -> list[str]:
    if isinstance(urls, dict):
        return [s for value in urls.values() for s in strings(value)]
    if isinstance(urls, list):
        return [s for value in urls for s in strings(value)]
    return [urls] if isinstance(urls, str) else []


def path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].partition("/")[2] if "/" in url.split("://", 1)[1] else ""


@pytest.mark.parametrize("exchange_id", ["binance", "bybit", "okx"])
def test_every_rest_url_moves_and_keeps_its_path(exchange_id: str) -> None:
    exchange = getattr(ccxt, exchange_id)()
    before = exchange.urls["api"]
    after = rewrite(before, BASE)
    assert len(strings(after)) == len(strings(before)) > 0
    for old, new in zip(strings(before), strings(after), strict=True):
        assert new.startswith(BASE)
        assert urlsplit(new).path == path_of(old)
    assert before != after  # a copy: the class defaults are not touched


def test_binance_keeps_each_api_family_apart_by_path() -> None:
    moved = rewrite(ccxt.binance().urls["api"], BASE)
    assert moved["sapi"] == f"{BASE}/sapi/v1"
    assert moved["fapiPrivateV3"] == f"{BASE}/fapi/v3"
    assert moved["papi"] == f"{BASE}/papi/v1"
    assert moved["public"] == f"{BASE}/api/v3"


def test_placeholders_in_hosts_are_replaced_with_the_host() -> None:
    assert rewrite({"rest": "https://{hostname}"}, BASE) == {"rest": BASE}
    assert rewrite("https://api.{hostname}/v5", BASE) == f"{BASE}/v5"


@pytest.mark.parametrize("exchange_id", ["binance", "bybit", "okx"])
def test_websocket_urls_move_too_and_follow_the_base_security(exchange_id: str) -> None:
    exchange = getattr(ccxtpro, exchange_id)()
    sockets = [s for s in strings(exchange.urls["api"]) if s.startswith(("ws://", "wss://"))]
    assert sockets
    plain = [s for s in strings(rewrite(exchange.urls["api"], BASE)) if s.startswith("ws")]
    assert all(s.startswith("ws://127.0.0.1:18080/") for s in plain)
    secure = strings(rewrite(exchange.urls["api"], "https://proxy.internal"))
    assert {s.split("://")[0] for s in secure} == {"https", "wss"}


def test_a_base_path_prefix_is_kept_before_each_path() -> None:
    urls = {"rest": "https://www.okx.com", "ws": ["wss://ws.okx.com:8443/ws/v5/private?x=1"]}
    assert rewrite(urls, "https://proxy.internal/okx/") == {
        "rest": "https://proxy.internal/okx",
        "ws": ["wss://proxy.internal/okx/ws/v5/private?x=1"],
    }


def test_values_that_are_not_urls_are_left_alone() -> None:
    assert rewrite({"n": 3, "s": "not a url", "none": None}, BASE) == {
        "n": 3,
        "s": "not a url",
        "none": None,
    }


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://host", "http:// or https://"),
        ("127.0.0.1:8080", "http:// or https://"),
        ("http://", "no host"),
        ("http://host/?token=secret", "query"),
        ("http://host/#frag", "query or a fragment"),
    ],
)
def test_an_unusable_base_url_is_refused_without_echoing_it(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        check_base_url(url)
    assert "secret" not in str(caught.value)


def test_point_at_uses_the_sandbox_then_the_base_url() -> None:
    exchange = ccxt.bybit()
    test_urls = exchange.urls["test"]
    point_at(exchange, sandbox=True)
    assert exchange.urls["api"] == test_urls
    point_at(exchange, BASE)
    assert all(s.startswith(BASE) for s in strings(exchange.urls["api"]))
    point_at(exchange)  # nothing asked, nothing changed
    assert all(s.startswith(BASE) for s in strings(exchange.urls["api"]))
