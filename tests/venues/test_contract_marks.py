"""Which edges price the contracts a book holds, and from which sources, in which order."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from types import ModuleType

import pytest

from equity_daemon.errors import VenueDataError
from equity_daemon.model import VenueReport, VenueState
from equity_daemon.oracle import PriceOracle
from equity_daemon.venues.contract_marks import (
    Contract,
    ContractMarks,
    LiveMark,
    PositionMark,
    read_mark,
)
from equity_daemon.venues.exchanges import Lines, binance, bybit, okx
from tests.reports import NOW, Clock
from tests.venues.test_exchange_mappings import perp

pytestmark = pytest.mark.anyio

D = Decimal


class Reader:
    """A mark reader that answers one mark, or fails."""

    def __init__(self, name: str, mark: Decimal | None) -> None:
        self.name = name
        self._mark = mark
        self.asked: list[Contract] = []

    async def mark(self, contract: Contract) -> Decimal:
        self.asked.append(contract)
        if self._mark is None:
            raise LookupError("no mark")
        return self._mark


def holding(venue: str, mark: str | None, *, inverse: bool = False, age: int = 0) -> VenueState:
    """A venue's report holding one short on Bybit, its answer carrying `mark`."""
    lines = Lines(venue, "unified", "bybit")
    symbol = "BTC/USD:BTC" if inverse else "ETH/USDT:USDT"
    inverse_fields: dict[str, object] = {"base": "BTC", "settle": "BTC", "inverse": True}
    lines.perp(
        perp(
            "short",
            symbol=symbol,
            mark_price=None if mark is None else D(mark),
            market_id="BTCUSD" if inverse else "ETHUSDT",
            **(inverse_fields if inverse else {}),
        )
    )
    report = VenueReport(venue, NOW - timedelta(seconds=age), tuple(lines.positions))
    return VenueState(report, report)


def marks(readers: dict[str, Reader]) -> ContractMarks:
    return ContractMarks(readers, lambda venue: timedelta(minutes=5), Clock())


def test_each_contract_held_gets_one_edge_read_live_with_its_positions_marks_as_fallback() -> None:
    live = Reader("bybit-data", D(3010))
    (edge,) = marks({"a": live, "b": live}).edges([holding("a", "3005"), holding("b", "3007")])
    assert (edge.base, edge.quote, edge.cross_check) == ("bybit:ETH/USDT:USDT", "USDT", False)
    sources = edge.sources
    assert isinstance(sources[0], LiveMark)
    assert [s.name for s in sources] == ["bybit-data", "a position", "b position"]
    assert [s.rate for s in sources[1:] if isinstance(s, PositionMark)] == [D(3005), D(3007)]


def test_an_inverse_contracts_edge_prices_its_usd_face_in_its_base_coin() -> None:
    (edge,) = marks({}).edges([holding("a", "61000", inverse=True)])
    assert (edge.base, edge.quote) == ("BTC", "bybit:BTC/USD:BTC")  # 1 BTC = mark contract-USD


def test_a_position_without_a_mark_and_a_venue_without_a_reader_give_no_source() -> None:
    assert marks({}).edges([holding("a", None)])[0].sources == ()


async def test_the_live_mark_is_used_and_the_positions_own_only_when_it_fails() -> None:
    state = holding("a", "3005", age=30)
    for reader, expected, fallback in (
        (Reader("a", D(3010)), D(3010), 0),
        (Reader("a", None), D(3005), 1),
    ):
        edges = marks({"a": reader}).edges([state])
        found = await PriceOracle([], Clock()).quotes(None, edges)
        (used,) = [q for q in found.quotes if q.rank == fallback]
        assert used.rate == expected
        if fallback:  # dated at its report: as old as the positions, never older
            assert used.at == NOW - timedelta(seconds=30)
            assert [f.source for f in found.failures] == ["a"]
        assert reader.asked[0].market_id == "ETHUSDT"


class Client:
    """A ccxt instance stand-in whose raw public calls answer `answer`."""

    def __init__(self, answer: object) -> None:
        self.answer = answer
        self.calls: list[tuple[str, dict[str, object]]] = []

    def __getattr__(self, method: str) -> object:
        async def call(params: dict[str, object]) -> object:
            self.calls.append((method, params))
            return self.answer

        return call


@pytest.mark.parametrize(
    ("mapping", "inverse", "answer", "call"),
    [
        (
            binance,
            True,
            [{"symbol": "BTCUSD_PERP", "markPrice": "61000.5"}],
            ("dapiPublicGetPremiumIndex", {"symbol": "BTCUSD_PERP"}),
        ),
        (
            bybit,
            False,
            {"result": {"list": [{"symbol": "BTCUSD_PERP", "markPrice": "61000.5"}]}},
            ("publicGetV5MarketTickers", {"category": "linear", "symbol": "BTCUSD_PERP"}),
        ),
        (
            okx,
            False,
            {"data": [{"instId": "BTCUSD_PERP", "markPx": "61000.5"}]},
            ("publicGetPublicMarkPrice", {"instType": "FUTURES", "instId": "BTCUSD_PERP"}),
        ),
    ],
)
async def test_a_mark_is_read_with_one_raw_public_call_and_an_answer_without_it_fails(
    mapping: ModuleType, inverse: bool, answer: object, call: tuple[str, dict[str, object]]
) -> None:
    contract = Contract("x:BTC", "BTCUSD_PERP", "future", inverse, "BTC", "x:BTC")
    client = Client(answer)
    assert await read_mark(client, "cex", mapping, contract) == D("61000.5")
    assert client.calls == [call]
    other = replace(contract, market_id="ETHUSD_PERP")
    with pytest.raises(VenueDataError, match=r"x:BTC mark: no .* of ETHUSD_PERP"):
        await read_mark(client, "cex", mapping, other)
    with pytest.raises(VenueDataError, match="no market id"):
        await read_mark(client, "cex", mapping, replace(contract, market_id=None))
