"""The manual venue: an operator-edited file, re-read on change, never half-trusted."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest

from equity_daemon.errors import VenueDataError
from equity_daemon.model import PositionKind
from equity_daemon.venues.manual import ManualVenue
from tests.reports import NOW

pytestmark = pytest.mark.anyio

GOOD = """
[[positions]]
account = "cold"
asset = "USDT"
amount = "125000.50"

[[positions]]
asset = "ETH"
amount = 1.000000000000000001
kind = "debt"

[[positions]]
asset = "ETH"
amount = "-3"
kind = "hedge"
unrealized_pnl = "-120.5"
pnl_currency = "USDT"

[[quotes]]
base = "GHO"
quote = "USDT"
rate = "0.998"
"""


def venue(path: Path) -> ManualVenue:
    return ManualVenue("ops", path, lambda: NOW)


def write(path: Path, text: str, bump: int = 0) -> None:
    path.write_text(text)
    stamp = 1_700_000_000 + bump
    os.utime(path, (stamp, stamp))


async def test_positions_are_read_exactly_as_written(tmp_path: Path) -> None:
    path = tmp_path / "book.toml"
    write(path, GOOD)
    report = await venue(path).fetch()
    cold, debt, hedge = report.positions
    assert (cold.account, cold.asset.symbol, cold.amount) == ("cold", "USDT", Decimal("125000.50"))
    assert (debt.kind, debt.amount) == (PositionKind.DEBT, Decimal("1.000000000000000001"))
    assert hedge.details == {"unrealized_pnl": Decimal("-120.5"), "pnl_currency": "USDT"}
    assert report.fetched_at == NOW


async def test_json_works_too_and_floats_stay_exact(tmp_path: Path) -> None:
    path = tmp_path / "book.json"
    write(path, '{"positions": [{"asset": "USDT", "amount": 0.1}]}')
    (line,) = (await venue(path).fetch()).positions
    assert line.amount == Decimal("0.1")


async def test_operator_rates_serve_as_a_price_source(tmp_path: Path) -> None:
    path = tmp_path / "book.toml"
    write(path, GOOD)
    ops = venue(path)
    await ops.fetch()
    assert (await ops.observe("GHO", "USDT")).rate == Decimal("0.998")
    with pytest.raises(LookupError, match="no rate for ETH/USDT"):
        await ops.observe("ETH", "USDT")


async def test_an_edit_is_picked_up_and_an_unchanged_file_is_not_parsed_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "book.toml"
    write(path, GOOD)
    ops = venue(path)
    first = await ops.fetch()
    second = await ops.fetch()
    assert second.positions is first.positions
    write(path, '[[positions]]\nasset = "USDT"\namount = "1"\n', bump=1)
    assert [p.amount for p in (await ops.fetch()).positions] == [Decimal(1)]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[[positions]]\nasset = 'USDT'\n", "book.toml: positions[0].amount: Field required"),
        ("[[positions]]\nasset = 'USDT'\namount = 'lots'\n", "positions[0].amount"),
        ("[[positions]]\nasset = 'USDT'\namount = 'NaN'\n", "positions[0].amount"),
        ("[[positions]]\nasset = 'X'\namount = 1\ncolour = 'red'\n", "positions[0].colour"),
        ("[[positions]\n", "book.toml: not valid toml"),
        ("positions = []\n[[quotes]]\nbase = 'A'\nquote = 'B'\nrate = '0'\n", "quotes[0].rate"),
    ],
)
async def test_a_malformed_file_names_the_problem(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "book.toml"
    write(path, text)
    with pytest.raises(VenueDataError) as caught:
        await venue(path).fetch()
    assert reason in caught.value.reason
    assert caught.value.venue == "ops"


async def test_a_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(VenueDataError, match=r"cannot read gone\.toml"):
        await venue(tmp_path / "gone.toml").fetch()


async def test_a_bad_edit_keeps_the_last_good_positions_for_the_next_good_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "book.toml"
    write(path, GOOD)
    ops = venue(path)
    good = await ops.fetch()
    write(path, "garbage = [", bump=1)
    with pytest.raises(VenueDataError):
        await ops.fetch()
    write(path, GOOD, bump=2)
    assert (await ops.fetch()).positions == good.positions


async def test_a_change_that_keeps_size_and_mtime_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "book.toml"
    write(path, GOOD)
    ops = venue(path)
    assert (await ops.fetch()).positions[0].amount == Decimal("125000.50")
    write(path, GOOD.replace("125000.50", "125000.49"))  # same length, same mtime
    assert (await ops.fetch()).positions[0].amount == Decimal("125000.49")


NO_POSITIONS = "no positions (an empty file is not believed; write `{}` to say the venue holds"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        pytest.param("book.toml", "", id="toml-0-bytes"),
        pytest.param("book.toml", "\n  \n# nothing yet\n", id="toml-only-comments"),
        pytest.param("book.toml", "[[quotes]]\nbase = 'A'\nquote = 'B'\nrate = 1\n", id="quotes"),
        pytest.param("book.json", "", id="json-0-bytes"),
        pytest.param("book.json", " \n", id="json-only-whitespace"),
        pytest.param("book.json", "{}", id="json-empty-object"),
    ],
)
async def test_an_empty_file_is_a_data_error(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    write(path, text)
    with pytest.raises(VenueDataError) as caught:
        await venue(path).fetch()
    say_so = '{"positions": []}' if name.endswith(".json") else "positions = []"
    assert caught.value.reason.startswith(f"{name}: " + NO_POSITIONS.format(say_so))


@pytest.mark.parametrize(
    ("name", "text"),
    [("book.toml", "positions = []\n"), ("book.json", '{"positions": []}')],
)
async def test_an_explicit_empty_positions_list_is_a_valid_empty_report(
    tmp_path: Path, name: str, text: str
) -> None:
    path = tmp_path / name
    write(path, text)
    report = await venue(path).fetch()
    assert (report.ok, report.positions) == (True, ())


async def test_a_truncated_file_is_still_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "book.toml"
    write(path, GOOD[: GOOD.index("amount = 1.0")] + 'amount = "12')
    with pytest.raises(VenueDataError, match=r"book\.toml: not valid toml"):
        await venue(path).fetch()


async def test_a_quote_only_change_gives_a_new_revision(tmp_path: Path) -> None:
    path = tmp_path / "book.toml"
    write(path, GOOD)
    ops = venue(path)
    first = await ops.fetch()
    assert (await ops.fetch()).revision == first.revision is not None  # unchanged: same token
    write(path, GOOD.replace('rate = "0.998"', 'rate = "0.997"'), bump=1)
    second = await ops.fetch()
    assert second.positions == first.positions
    assert second.revision not in (None, first.revision)
    assert (await ops.observe("GHO", "USDT")).rate == Decimal("0.997")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('amount = "1E+999999999"', "positions[0].amount: Input should be less than 1E+30"),
        ('amount = "-1e30"', "positions[0].amount: Input should be greater than -1E+30"),
        ('amount = "1E-999999999"', "positions[0].amount: Decimal input should have no more"),
        ('amount = "Infinity"', "positions[0].amount: Input should be a finite number"),
        (
            'amount = 1\nunrealized_pnl = "-1E+40"\npnl_currency = "USDT"',
            "positions[0].unrealized_pnl: Input should be greater than -1E+30",
        ),
        ('amount = 1\n[[quotes]]\nbase = "A"\nquote = "B"\nrate = "1E+30"', "quotes[0].rate"),
        ('amount = 1\n[[quotes]]\nbase = "A"\nquote = "B"\nrate = "1E-37"', "quotes[0].rate"),
    ],
)
async def test_absurd_amounts_and_rates_are_data_errors(
    tmp_path: Path, text: str, reason: str
) -> None:
    path = tmp_path / "book.toml"
    write(path, '[[positions]]\nasset = "USDT"\n' + text + "\n")
    with pytest.raises(VenueDataError) as caught:
        await venue(path).fetch()
    assert caught.value.reason.startswith(f"book.toml: {reason}")


async def test_amounts_at_the_bounds_are_read_exactly(tmp_path: Path) -> None:
    path = tmp_path / "book.json"
    largest, finest = "9" * 30, "0." + "0" * 35 + "1"
    write(
        path,
        f'{{"positions": [{{"asset": "A", "amount": {largest}}}, '
        f'{{"asset": "B", "amount": {finest}}}, {{"asset": "C", "amount": "0E-999999999"}}]}}',
    )
    big, small, zero = (await venue(path).fetch()).positions
    assert (big.amount, small.amount) == (Decimal(largest), Decimal(finest))
    assert str(zero.amount) == "0"  # not a zero with a billion decimal places to print
