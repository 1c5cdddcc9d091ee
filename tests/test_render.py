"""The text table `equity-daemon once` prints: every flag a reader must not miss."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from equity_daemon.calculator import Limits
from equity_daemon.model import PriceUsed
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
