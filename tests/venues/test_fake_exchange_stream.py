"""The fake exchanges' private websockets, as ccxt.pro follows them: Bybit's `auth`, then `wallet`
and `position` pushes; OKX's `login`, then `account` and `positions` pushes; Binance's listen-key
stream. A refused login and a dropped socket come out as the daemon's errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp
import anyio
import pytest

from equity_daemon.errors import VenueAuthError, VenueError, VenueUnavailable
from equity_daemon.venues.exchange_client import create_exchange
from equity_daemon.venues.exchange_errors import exchange_errors
from equity_daemon.venues.fake_exchange import (
    BinanceDialect,
    Dialect,
    FakeExchange,
    FakePosition,
    Holding,
    OkxDialect,
    fake_exchange,
)
from tests.venues.exchanges import CREDENTIALS, subscribed

pytestmark = pytest.mark.anyio

D = Decimal


@asynccontextmanager
async def client_of(fake: FakeExchange) -> AsyncIterator[Any]:
    """A streaming ccxt.pro instance pointed at `fake`; closed on exit."""
    client = create_exchange(
        fake.name, CREDENTIALS, base_url=fake.base_url, rate_limit=False, streaming=True
    )
    try:
        yield client
    finally:
        await client.close()


@asynccontextmanager
async def streaming(exchange: str = "bybit") -> AsyncIterator[tuple[FakeExchange, Any]]:
    async with fake_exchange(exchange) as fake, client_of(fake) as client:
        yield fake, client


async def login_refused(fake: FakeExchange, client: Any, *params: Any) -> None:
    """Asserts that `watch_balance(*params)` on a fake refusing the stream's login is an auth
    error."""
    fake.dialect.refuse_stream_auth = True
    with anyio.fail_after(5), pytest.raises(VenueAuthError), exchange_errors("cex", client):
        await client.watch_balance(*params)


async def test_a_wallet_push_reaches_watch_balance() -> None:
    async with streaming() as (fake, client), anyio.create_task_group() as tg:
        got: list[Any] = []

        async def watch() -> None:
            got.append(await client.watch_balance())

        tg.start_soon(watch)
        await subscribed(fake, "wallet")
        eth = Holding(balance=D(10), borrowed=D(2), unrealized_pnl=D(1))
        fake.set_holding("unified", "ETH", eth)
        assert await fake.push("wallet") == 1
    (balance,) = got
    # ccxt.pro's websocket total is the coin's equity, its REST total the wallet balance
    assert balance["ETH"]["total"] == pytest.approx(9)
    assert "debt" not in balance["ETH"]  # no ccxt.pro parser fills debt (venue-pitfalls 7)


async def test_positions_start_from_rest_then_follow_pushes() -> None:
    async with streaming() as (fake, client):
        fake.set_positions([FakePosition("ETH", D(-2), D(3100))])
        # the venue takes its own snapshot and turns ccxt's off; the fake serves ccxt's too
        client.options["watchPositions"]["fetchPositionsSnapshot"] = True
        with anyio.fail_after(5):
            (first,) = await client.watch_positions()  # the REST snapshot
        assert (first["side"], first["contracts"]) == ("short", 2)
        async with anyio.create_task_group() as tg:
            got: list[Any] = []

            async def watch() -> None:
                got.append(await client.watch_positions())

            tg.start_soon(watch)
            await subscribed(fake, "position")
            fake.set_positions([FakePosition("ETH", D(-3), D(3050))])
            assert await fake.push("position") == 1
    ((pushed,),) = got
    assert (pushed["symbol"], pushed["side"], pushed["contracts"]) == ("ETH/USDT:USDT", "short", 3)


async def test_a_refused_login_is_an_auth_error() -> None:
    async with streaming() as (fake, client):
        await login_refused(fake, client)


async def test_a_dropped_socket_is_unavailable_not_a_crash() -> None:
    async with streaming() as (fake, client):
        caught: list[VenueError] = []

        async def watch() -> None:
            try:
                with exchange_errors("cex", client):
                    await client.watch_balance()
            except VenueError as exc:
                caught.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                await subscribed(fake, "wallet")
                await fake.drop_streams()
    (error,) = caught
    assert isinstance(error, VenueUnavailable)


async def test_the_socket_wants_auth_before_subscribe_and_answers_pings() -> None:
    async with (
        fake_exchange("bybit") as fake,
        aiohttp.ClientSession() as http,
        http.ws_connect(fake.base_url + "/v5/private") as socket,
    ):
        await socket.send_json({"op": "subscribe", "args": ["wallet"], "req_id": "1"})
        refused = await socket.receive_json()
        await socket.send_json({"op": "auth", "args": ["k", "1", "sig"]})
        accepted = await socket.receive_json()
        await socket.send_json({"op": "subscribe", "args": ["wallet"]})
        subscribed_ = await socket.receive_json()
        await socket.send_json({"op": "ping", "req_id": "2"})
        pong = await socket.receive_json()
        await socket.send_json({"op": "dance"})
        unknown = await socket.receive_json()
        assert fake.dialect.subscribers == {"wallet": 1}
        assert await fake.push("position") == 0  # nobody follows it
    assert (refused["success"], refused["req_id"]) == (False, "1")
    assert accepted["success"] is True
    assert subscribed_["success"] is True
    assert (pong["op"], pong["req_id"]) == ("pong", "2")
    assert unknown["success"] is False


async def test_an_unknown_topic_or_a_dialect_without_streams_is_refused() -> None:
    bybit = fake_exchange("bybit")
    with pytest.raises(ValueError, match="no private topic 'orders'"):
        await bybit.push("orders")
    okx = fake_exchange("okx")
    with pytest.raises(ValueError, match="no private channel 'orders'"):
        await okx.push("orders")

    class Silent(OkxDialect):  # a dialect that serves no websocket at all
        push = Dialect.push
        send = Dialect.send

    quiet = FakeExchange(Silent)
    with pytest.raises(LookupError, match="the fake okx serves no websocket"):
        await quiet.push("account")
    with pytest.raises(LookupError, match="the fake okx serves no websocket"):
        await quiet.send("account", {})
    assert quiet.dialect.subscribers == {}


async def test_binance_usdm_account_updates_reach_ccxt_over_a_listen_key_socket() -> None:
    async with streaming("binance") as (fake, client):
        fake.set_positions([FakePosition("ETH", D(-2), D(3100))])
        async with anyio.create_task_group() as tg:
            got: list[Any] = []

            async def watch() -> None:
                got.append(await client.watch_balance({"type": "future"}))

            tg.start_soon(watch)
            await subscribed(fake, "account")
            fake.set_holding("futures", "USDT", Holding(balance=D(5000)))
            assert await fake.push("account") == 1
    (balance,) = got
    # the push's total is the wallet balance `wb`, not REST's margin balance (pitfalls 5)
    assert balance["USDT"]["total"] == pytest.approx(5000)
    assert fake.calls("/fapi/v1/listenKey")
    assert isinstance(fake.dialect, BinanceDialect)
    assert fake.dialect.listen_keys


async def test_binance_refuses_a_listen_key_to_a_bad_key_and_a_socket_without_one() -> None:
    async with fake_exchange("binance") as fake:
        async with client_of(fake) as client:
            await login_refused(fake, client, {"type": "future"})
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(fake.base_url + "/private/ws?listenKey=nope") as socket,
        ):
            closed = await socket.receive()
    assert closed.type is aiohttp.WSMsgType.CLOSE


async def test_binances_websocket_api_answers_requests_by_id_and_wraps_events() -> None:
    async with (
        fake_exchange("binance") as fake,
        aiohttp.ClientSession() as http,
        http.ws_connect(fake.base_url + "/ws-api/v3") as socket,
    ):
        await socket.send_json({"id": "1", "method": "session.dance", "params": {}})
        unknown = await socket.receive_json()
        unsigned = {"id": "2", "method": "userDataStream.subscribe.signature", "params": {}}
        await socket.send_json(unsigned)
        refused = await socket.receive_json()
        bad_token = {"listenToken": "nope"}
        await socket.send_json(
            {"id": "3", "method": "userDataStream.subscribe.listenToken", "params": bad_token}
        )
        invalid = await socket.receive_json()
        signed = {"apiKey": "k", "timestamp": 1, "signature": "s"}
        await socket.send_json(
            {"id": "4", "method": "userDataStream.subscribe.signature", "params": signed}
        )
        accepted = await socket.receive_json()
        fake.set_holding("spot", "ETH", Holding(balance=D(3), locked=D(1)))
        assert fake.dialect.subscribers == {"spot": 1}
        assert await fake.push("spot") == 1
        event = await socket.receive_json()
    assert (unknown["id"], unknown["status"]) == ("1", 400)
    assert (refused["status"], refused["error"]["code"]) == (401, -2015)
    assert invalid["error"]["code"] == -1209
    assert accepted == {"id": "4", "status": 200, "result": {"subscriptionId": 0}}
    assert event["subscriptionId"] == 0
    assert event["event"]["e"] == "outboundAccountPosition"
    assert event["event"]["B"] == [{"a": "ETH", "f": "2", "l": "1"}]


async def test_binance_margin_subscribes_with_a_listen_token_and_pm_with_a_papi_key() -> None:
    async with (
        fake_exchange("binance") as fake,
        client_of(fake) as margin,
        client_of(fake) as portfolio,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(margin.watch_balance, {"type": "margin"})
        tg.start_soon(portfolio.watch_balance, {"type": "future", "portfolioMargin": True})
        await subscribed(fake, "margin")
        await subscribed(fake, "portfolio")
        tg.cancel_scope.cancel()
    assert fake.calls("/sapi/v1/userListenToken")
    assert fake.calls("/papi/v1/listenKey")
    assert not fake.calls("/fapi/v1/listenKey")


# --- OKX: `login`, then the `account` and `positions` channels -----------------------------


async def test_okx_wants_login_before_subscribe_and_answers_its_text_ping() -> None:
    async with (
        fake_exchange("okx") as fake,
        aiohttp.ClientSession() as http,
        http.ws_connect(fake.base_url + "/ws/v5/private") as socket,
    ):
        account = {"channel": "account"}
        await socket.send_json({"op": "subscribe", "args": [account]})
        refused = await socket.receive_json()
        await socket.send_json({"op": "login", "args": [{"apiKey": "k", "timestamp": "1"}]})
        incomplete = await socket.receive_json()
        login = {"apiKey": "k", "passphrase": "p", "timestamp": "1", "sign": "s"}
        await socket.send_json({"op": "login", "args": [login]})
        accepted = await socket.receive_json()
        positions = {"channel": "positions", "instType": "ANY"}
        await socket.send_json({"op": "subscribe", "args": [account, positions, {"channel": "x"}]})
        answers = [await socket.receive_json() for _ in range(3)]
        await socket.send_str("ping")
        pong = await socket.receive_str()
        await socket.send_json({"op": "dance"})
        unknown = await socket.receive_json()
        await socket.send_str("not json")
        illegal = await socket.receive_json()
        assert fake.dialect.subscribers == {"account": 1, "positions": 1}
        assert isinstance(fake.dialect, OkxDialect)
        fake.dialect.silent = True  # half-open: no pong, no push
        await socket.send_str("ping")
        with anyio.move_on_after(0.3) as waited:
            await socket.receive_str()
        assert waited.cancelled_caught
        assert await fake.push("account") == 0
    assert (refused["event"], refused["code"]) == ("error", "60011")
    assert (incomplete["event"], incomplete["code"]) == ("error", "60009")
    assert (accepted["event"], accepted["code"]) == ("login", "0")
    assert [(a["event"], a.get("arg")) for a in answers[:2]] == [
        ("subscribe", account),
        ("subscribe", positions),
    ]
    assert (answers[2]["event"], answers[2]["code"]) == ("error", "60018")
    assert pong == "pong"
    assert (unknown["event"], unknown["code"]) == ("error", "60019")
    assert (illegal["event"], illegal["code"]) == ("error", "60012")


async def test_okx_account_and_positions_pushes_reach_ccxt() -> None:
    async with streaming("okx") as (fake, client), anyio.create_task_group() as tg:
        balances: list[Any] = []
        positions: list[Any] = []

        async def watch_balance() -> None:
            balances.append(await client.watch_balance())

        async def watch_positions() -> None:
            positions.append(await client.watch_positions())

        tg.start_soon(watch_balance)
        tg.start_soon(watch_positions)
        await subscribed(fake, "account")
        await subscribed(fake, "positions")
        fake.set_holding("trading", "ETH", Holding(balance=D(10), borrowed=D(2)))
        fake.set_positions([FakePosition("ETH", D(-2), D(3100))])
        assert await fake.push("account") == 1
        assert await fake.push("positions") == 1
    (balance,) = balances
    # ccxt's websocket total is OKX's `eq`, already net of the liability (pitfalls 17)
    assert balance["ETH"]["total"] == pytest.approx(8)
    ((position,),) = positions
    assert (position["symbol"], position["side"], position["contracts"]) == (
        "ETH/USDT:USDT",
        "short",
        20,
    )


async def test_okx_a_refused_login_is_an_auth_error() -> None:
    async with streaming("okx") as (fake, client):
        await login_refused(fake, client)
