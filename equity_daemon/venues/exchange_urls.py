"""Where a ccxt exchange sends its requests: its own hosts, its sandbox, or a `base_url`.

`base_url` is the one mechanism behind three needs: an operator's HTTP proxy or regional host
(`https://proxy.internal/binance`), and the fake exchange servers the tests run on 127.0.0.1.
`rewrite` replaces the scheme and host of every REST and websocket URL in ccxt's `urls['api']`
(nested dicts and lists of strings, as Binance's two dozen keys or OKX's one) and keeps each
path, after the base's own path prefix:

| ccxt URL                              | base_url               | becomes                        |
|---------------------------------------|------------------------|--------------------------------|
| `https://fapi.binance.com/fapi/v1`    | `http://127.0.0.1:8080`| `http://127.0.0.1:8080/fapi/v1`|
| `wss://stream.bybit.com/v5/private`   | `http://127.0.0.1:8080`| `ws://127.0.0.1:8080/v5/private`|
| `https://{hostname}`                  | `https://proxy/okx`    | `https://proxy/okx`            |
| `wss://ws.okx.com:8443/ws/v5/private` | `https://proxy/okx`    | `wss://proxy/okx/ws/v5/private`|

Websocket URLs follow the base's security: `ws` under `http`, `wss` under `https`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

WEBSOCKET_SCHEMES = {"http": "ws", "https": "wss"}

Host = tuple[str, bool, str | None]


def host_of(exchange_id: str, sandbox: bool, base_url: str | None) -> Host:
    """Which exchange host requests go to, as one key: two instances with the same key ask the
    same servers (a venue and the market data of its exchange)."""
    return exchange_id, sandbox, None if base_url is None else base_url.rstrip("/")


def check_base_url(base_url: str) -> str:
    """`base_url` if it is an http(s) URL with a host and no query or fragment.

    Raises:
        ValueError: naming what is wrong (never echoing the URL, which may carry credentials).
    """
    parts = urlsplit(base_url)
    if parts.scheme not in WEBSOCKET_SCHEMES:
        raise ValueError("base_url must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("base_url has no host")
    if parts.query or parts.fragment:
        raise ValueError("base_url must not have a query or a fragment")
    return base_url


def rewrite(urls: Any, base_url: str) -> Any:
    """A copy of `urls` (a string, or dicts and lists of them) moved onto `base_url`."""
    check_base_url(base_url)
    return _rewrite(urls, urlsplit(base_url))


def _rewrite(urls: Any, base: Any) -> Any:
    if isinstance(urls, dict):
        return {key: _rewrite(value, base) for key, value in urls.items()}
    if isinstance(urls, list):
        return [_rewrite(value, base) for value in urls]
    if not isinstance(urls, str) or "://" not in urls:
        return urls
    scheme, _, rest = urls.partition("://")
    path, query = _path_and_query(rest)
    scheme = WEBSOCKET_SCHEMES[base.scheme] if scheme in {"ws", "wss"} else base.scheme
    return urlunsplit((scheme, base.netloc, base.path.rstrip("/") + path, query, ""))


def _path_and_query(rest: str) -> tuple[str, str]:
    # split by hand: ccxt's hosts carry `{hostname}` placeholders urlsplit would mangle
    slash = rest.find("/")
    tail = "" if slash < 0 else rest[slash:]
    path, _, query = tail.partition("?")
    return path, query


def point_at(exchange: Any, base_url: str | None = None, *, sandbox: bool = False) -> None:
    """Send a ccxt exchange's requests to its sandbox, to `base_url`, or (with `sandbox`) to
    `base_url` with the sandbox's paths.

    Args:
        exchange: a ccxt (or ccxt.pro) exchange instance, before its first request.
        base_url: the scheme, host and optional path prefix to use instead of the exchange's.
        sandbox: use the exchange's test network (`set_sandbox_mode`); Binance's testnet has
            no `sapi`, so margin and funding accounts do not work there.
    """
    if sandbox:
        exchange.set_sandbox_mode(True)
    if base_url is not None:
        exchange.urls["api"] = rewrite(exchange.urls["api"], base_url)
