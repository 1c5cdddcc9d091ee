"""The text table `equity-daemon once` prints: every flag a reader must not miss."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from equity_daemon.calculator import Limits
from equity_daemon.model import PositionKind, PriceUsed
from equity_daemon.prices import QuoteFailure
from equity_daemon.render import snapshot_table
from tests.reports import NOW, ok, pos, quote, snapshot


def test_the_table_flags_stale_fallback_partial_ignored_and_quote_failures() -> None:
    last = {"BTC": PriceUsed("BTC", Decimal(90000), ("BTC", "USDT"), ("okx",), NOW)}
    snap = snapshot(
        ok(
            pos("binance", "ETH", "1"),
            pos("binance", "BTC", "1"),
            pos("binance", "GHO", "5"),
            pos("binance", "DUST", "0.1"),
        ),
        quotes=(quote("ETH", "USDT", "3000", rank=1),),
        limits=Limits(ignore_assets=("DUST",)),
        quote_failures=[QuoteFailure("ETH/USDT", "okx", "timeout")],
        last_good_prices=last,
        now=NOW + timedelta(minutes=3),
    )
    text = snapshot_table(snap)
    assert "INCOMPLETE, EQUITY UNKNOWN" in text
    assert "  equity                         unknown USDT\n    unknown: GHO has no price\n" in text
    assert "  assets                         unknown USDT" in text
    assert "    GHO                              unknown" in text  # by asset
    assert "  unvalued (no price, not in equity)\n    asset      binance   GHO" in text
    assert "  ignored (configured, not in equity)\n    asset      binance   DUST" in text
    assert "180s old  STALE" in text
    assert "FALLBACK" in text
    assert "  quote failed: ETH/USDT from okx: timeout" in text
    assert "problem: stale_price BTC: " in text


def test_long_venue_and_asset_names_keep_their_columns_apart() -> None:
    venue = "binance-portfolio-margin-main"  # 29 characters: wider than every column
    snap = snapshot(
        ok(
            pos(venue, "ETH", "1"),
            pos(venue, "variableDebtEthLidoWETH", "0.5", PositionKind.LOCKED),
            pos(venue, "ETH", "-2", PositionKind.HEDGE),
        ),
        quotes=(quote("ETH", "USDT", "3000"), quote("variableDebtEthLidoWETH", "ETH", "1")),
    )
    lines = snapshot_table(snap).splitlines()
    # each name, then at least one space, then the next column: never run together
    words = [line.split()[:5] for line in lines]
    assert [venue, "3,000.00"] in words  # by venue
    assert ["locked", venue, "variableDebtEthLidoWETH", "0.5", "value"] in words
    assert ["hedge", venue, "ETH", "-2", "short"] in words
    assert ["variableDebtEthLidoWETH", "3000", "USDT", "via", "binance"] in words  # prices
    # and the columns stay aligned: both excluded lines' amounts end in the same place
    locked = next(line for line in lines if line.lstrip().startswith("locked"))
    hedge = next(line for line in lines if line.lstrip().startswith("hedge"))
    assert locked.index(" 0.5 ") + 4 == hedge.index(" -2 ") + 3
