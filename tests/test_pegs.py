"""Pegs: a depeg shows in metrics before it shows in equity, whichever way the book values it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from equity_daemon.calculator import Limits
from equity_daemon.errors import ConfigError
from equity_daemon.history import History
from equity_daemon.model import ShareClass
from equity_daemon.pegs import Peg
from equity_daemon.runtime.supervisor import Daemon
from equity_daemon.settings import Settings, load_settings
from tests.reports import Clock, ok, pos, quote, snapshot

STETH = Peg("stETH", "ETH", Decimal(1))
LIDO = ok(pos("lido", "stETH", "100"))


def test_valued_at_market_the_depeg_is_reported_beside_the_market_value() -> None:
    snap = snapshot(
        LIDO,
        quotes=(quote("stETH", "ETH", "0.997", source="curve"),),
        share_class=ShareClass.ETH,
        limits=Limits(pegs={"stETH/ETH": STETH}),
    )
    assert snap.equity == Decimal("99.7")
    (check,) = snap.pegs
    assert [check.market, check.protocol, check.source] == [Decimal("0.997"), 1, "curve"]
    assert check.basis_points == Decimal(-30)
    assert snap.to_json()["pegs"][0]["basis_points"] == "-30"


def test_valued_at_peg_equity_holds_and_the_depeg_is_still_reported() -> None:
    at_peg = Peg("stETH", "ETH", Decimal(1), value_at_peg=True)
    snap = snapshot(
        LIDO,
        quotes=(
            quote("stETH", "ETH", "0.90", source="curve"),
            quote("stETH", "ETH", "0.91", source="chainlink", rank=1),
        ),
        share_class=ShareClass.ETH,
        limits=Limits(pegs={"stETH/ETH": at_peg}),
    )
    assert snap.equity == 100
    assert snap.complete  # a depeg is not a disagreement between sources
    (price,) = [p for p in snap.prices if p.asset == "stETH"]
    assert price.sources == ("peg",)
    (check,) = snap.pegs
    assert (check.market, check.basis_points, check.valued_at_peg) == (
        Decimal("0.90"),
        Decimal(-1000),
        True,
    )


def test_without_a_fresh_market_quote_the_depeg_is_unknown_not_zero() -> None:
    stale = quote("stETH", "ETH", "0.99", age=timedelta(hours=1))
    limits = Limits(pegs={"stETH/ETH": Peg("stETH", "ETH", Decimal(1), value_at_peg=True)})
    (check,) = snapshot(LIDO, quotes=(stale,), share_class=ShareClass.ETH, limits=limits).pegs
    assert (check.market, check.basis_points) == (None, None)


@pytest.mark.parametrize(
    ("edge", "message"),
    [
        ({"fixed": 1, "peg": 1}, "a peg is compared with market sources"),
        ({"sources": ["ops"], "value_at": "peg"}, 'value_at = "peg" needs the peg'),
    ],
)
def test_a_peg_without_market_sources_or_a_peg_value_is_a_config_error(
    tmp_path: Path, edge: dict[str, object], message: str
) -> None:
    prices = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in edge.items())
    config = tmp_path / "c.toml"
    config.write_text(
        '[books.b]\nshare_class = "ETH"\n'
        '[[books.b.venues]]\nkind = "manual"\nname = "ops"\npath = "x.toml"\n'
        f'[[books.b.prices]]\nbase = "stETH"\nquote = "ETH"\n{prices}\n'
    )
    with pytest.raises(ConfigError, match=message):
        load_settings(config)


@pytest.mark.anyio
async def test_the_depeg_is_exported_as_metrics(tmp_path: Path) -> None:
    (tmp_path / "ops.toml").write_text(
        '[[positions]]\nasset = "stETH"\namount = "10"\n'
        '[[quotes]]\nbase = "stETH"\nquote = "ETH"\nrate = "0.995"\n'
    )
    settings = Settings.model_validate(
        {
            "books": {
                "b": {
                    "share_class": "ETH",
                    "venues": [{"kind": "manual", "name": "ops", "path": tmp_path / "ops.toml"}],
                    "prices": [
                        {"base": "stETH", "quote": "ETH", "sources": ["ops"], "peg": 1},
                    ],
                }
            }
        }
    )
    daemon = Daemon(settings, Clock())
    history = await History.open(tmp_path / "h.sqlite3")
    await daemon.fetch_all_once()
    with capture_logs():
        await daemon.cycle(history)
    sample = daemon.instruments.registry.get_sample_value
    assert sample("equity_daemon_depeg_basis_points", {"book": "b", "asset": "stETH"}) == -50
    labels = {"book": "b", "asset": "stETH", "quote": "ETH"}
    assert sample("equity_daemon_peg_market_rate", labels) == 0.995
    assert sample("equity_daemon_peg_protocol_rate", labels) == 1
    await history.aclose()
