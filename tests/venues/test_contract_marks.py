"""Which edges price the contracts a book holds, and from which sources, in which order."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from equity_daemon.model import VenueReport, VenueState
from equity_daemon.oracle import PriceOracle
from equity_daemon.venues.contract_marks import Contract, ContractMarks, LiveMark, PositionMark
from equity_daemon.venues.exchanges import Lines
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
