"""Aave v3: supply (aToken) and variable debt of one address in one market (account
`aave-<market>:0x…`), its health factor, and Aave's own total for reconciliation.

Lines are named by the reserve's underlying symbol (`WETH`, not `aEthWETH`): an aToken balance
is that much of the underlying, the variable-debt balance that much owed, both unscaled by the
contracts (`balanceOf` applies the normalized index). So they are priced as the underlying with
no extra edge; the token's own symbol is in the line's `details`.

The reserves of a market are found at discovery from its Pool (`getReservesList`, then
`getReserveData` → aToken and variable-debt token, and the underlying's `symbol`/`decimals`).
A reserve's line is named by the symbol the venue's `tokens` give its underlying's address, if
any (configuration wins), else by its `symbol()`: a string, or a `bytes32` (MKR); a token
without a readable symbol fails discovery, saying how to name it, rather than being a line
no price could ever find.

`getUserAccountData` gives the health factor (WAD; uint256 max without debt, reported as
infinity) and `totalCollateralBase − totalDebtBase`, in USD with 8 decimals on Ethereum: a
`ReportedTotal` the calculator compares with the account's lines. Valued at the book's prices
they would differ from Aave's figure by the two price sets (venue-pitfalls 43), so the market's
own oracle (`AaveOracle.getAssetsPrices(reserves)`, found at discovery through the Pool's
`ADDRESSES_PROVIDER().getPriceOracle()`) is read in the same multicall and our balances valued
at its prices, as Aave does (`balance × price / 10**decimals` per reserve, in base units), go
with the total (`computed_at_venue_prices`): what remains is the rounding of pitfall 42 (aToken
down, debt up: a few base units), or balances and Aave's figure that really disagree. A market
whose oracle is not found, or a price read that fails, is reconciled at the book's prices.

Aave counts in `totalCollateralBase` only the reserves the user enabled as collateral, so the
Pool's `getUserConfiguration(user)` bitmap (bit `2 * id + 1` of reserve `id`, the `id` of
`getReserveData`) is read in the same multicall: each supply line says `collateral` true or
false in its details, and only collateral supplies go into our side of the reconciliation (at
the book's prices too: the others are named in the total's `uncounted`). A supply that is not
collateral is still equity, and never a false difference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from eth_utils.address import to_checksum_address

from equity_daemon.model import Asset, HealthFactor, Position, PositionKind, ReportedTotal
from equity_daemon.venues.multicall import Call, CallResult
from equity_daemon.venues.protocols import (
    ReadFailed,
    Readout,
    Run,
    account,
    balance_call,
    need,
    units,
)

BASE_DECIMALS = 8  # USD, Ethereum mainnet's base currency
BASE_CURRENCY = "USD"
WAD_DECIMALS = 18
UINT256_MAX = 2**256 - 1
RESERVE_DATA = (
    "((uint256),uint128,uint128,uint128,uint128,uint128,uint40,uint16,"
    "address,address,address,address,uint128,uint128,uint128)"
)
_ACCOUNT_DATA = ("uint256",) * 6
_USER_CONFIGURATION = ("(uint256)",)  # DataTypes.UserConfigurationMap


@dataclass(frozen=True, slots=True)
class Reserve:
    """One reserve of a market: its underlying token and the two tokens we read."""

    symbol: str
    underlying: str
    decimals: int
    a_token: str
    debt_token: str
    id: int  # its index in the market (its bits in a user's configuration)

    def is_collateral(self, configuration: int) -> bool:
        """Whether a user's `getUserConfiguration` bitmap has this reserve as collateral."""
        return bool(configuration >> (2 * self.id + 1) & 1)


@dataclass(frozen=True, slots=True)
class Market:
    """A market's reserves and its price oracle (None when the Pool did not name one)."""

    reserves: tuple[Reserve, ...]
    oracle: str | None


async def discover_market(
    run: Run, market: str, pool: str, names: Mapping[str, str], oracle: str | None = None
) -> Market:
    """The reserves listed by `pool` with their tokens, underlying symbols and decimals, and
    the market's `AaveOracle`: `oracle` when configured, else `ADDRESSES_PROVIDER()` →
    `getPriceOracle()`. `names` are the configured symbols by lower-case token address; they
    win over `symbol()`.

    Raises:
        ReadFailed: the reserves, or a reserve's token, data or symbol, cannot be read.
    """
    listed, provider = await run(
        [
            Call.of(pool, "getReservesList()", returns=("address[]",)),
            Call.of(pool, "ADDRESSES_PROVIDER()", returns=("address",)),
        ]
    )
    if oracle is None and provider.error is None:
        (found,) = await run(
            [Call.of(str(provider.value), "getPriceOracle()", returns=("address",))]
        )
        if found.error is None and int(str(found.value), 16):
            oracle = str(found.value)
    return Market(await _reserves(run, market, pool, listed, names), oracle)


async def _reserves(
    run: Run, market: str, pool: str, listed: CallResult, names: Mapping[str, str]
) -> tuple[Reserve, ...]:
    assets = [to_checksum_address(a) for a in need(listed, f"aave-{market} reserves")]
    calls: list[Call] = []
    for asset in assets:
        calls += [
            Call.of(pool, "getReserveData(address)", asset, returns=(RESERVE_DATA,)),
            Call.of(asset, "symbol()", returns=("string",)),
            Call.of(asset, "decimals()", returns=("uint8",)),
        ]
    results = await run(calls)
    reserves = []
    for index, asset in enumerate(assets):
        data, symbol, decimals = results[3 * index : 3 * index + 3]
        what = f"aave-{market} reserve {asset}"
        fields = need(data, what)
        reserves.append(
            Reserve(
                symbol=names.get(asset.lower()) or token_symbol(symbol, what),
                underlying=asset,
                decimals=int(need(decimals, what)),
                a_token=str(fields[8]),
                debt_token=str(fields[10]),
                id=int(fields[7]),
            )
        )
    return tuple(reserves)


def token_symbol(result: CallResult, what: str) -> str:
    """A token's `symbol()` answer: an ABI string, or a `bytes32` padded with zeros (MKR and
    other early tokens).

    Raises:
        ReadFailed: neither (it reverted, has no code, or is not printable text); the reason
            says to name the token in the venue's `tokens`.
    """
    text = str(result.value) if result.ok else _bytes32_text(result.data)
    if text and text.isprintable() and text.strip() == text:
        return text
    reason = result.error or f"{text!r} is no symbol"
    raise ReadFailed(
        f"{what}: symbol() unreadable ({reason}); name the token in the venue's tokens"
    )


def _bytes32_text(data: bytes) -> str:
    if len(data) != 32:
        return ""
    try:
        return data.rstrip(b"\0").decode("utf-8")
    except UnicodeDecodeError:
        return ""


@dataclass(frozen=True, slots=True)
class AaveReader:
    """`address` in the market `market` (its Pool at `pool`)."""

    market: str
    pool: str
    address: str
    reserves: tuple[Reserve, ...]
    oracle: str | None = None

    @property
    def account(self) -> str:
        return account(f"aave-{self.market}", self.address)

    def calls(self) -> Sequence[Call]:
        calls = [
            Call.of(
                self.pool,
                "getUserAccountData(address)",
                self.address,
                returns=_ACCOUNT_DATA,
                label="getUserAccountData",
            ),
            Call.of(
                self.pool,
                "getUserConfiguration(address)",
                self.address,
                returns=_USER_CONFIGURATION,
                label="getUserConfiguration",
            ),
        ]
        for reserve in self.reserves:
            calls += [
                balance_call(reserve.a_token, self.address, f"a{reserve.symbol}.balanceOf"),
                balance_call(
                    reserve.debt_token, self.address, f"variableDebt{reserve.symbol}.balanceOf"
                ),
            ]
        if self.oracle is not None:
            calls.append(
                Call.of(
                    self.oracle,
                    "getAssetsPrices(address[])",
                    [reserve.underlying for reserve in self.reserves],
                    returns=("uint256[]",),
                    label="AaveOracle.getAssetsPrices",
                )
            )
        return calls

    def read(self, results: Sequence[CallResult], out: Readout) -> None:
        collateral, debt, _available, _threshold, _ltv, health = need(results[0], self.account)
        (configuration,) = need(results[1], self.account)
        prices = self._prices(results[-1]) if self.oracle is not None else None
        ours = 0  # our balances at Aave's prices, in base units, as Aave sums them
        uncounted: set[str] = set()  # supplies Aave's figure leaves out (not collateral)
        factor = Decimal("Infinity") if health == UINT256_MAX else units(health, WAD_DECIMALS)
        out.health.append(
            HealthFactor(
                self.market,
                self.address,
                factor,
                units(collateral, BASE_DECIMALS),
                units(debt, BASE_DECIMALS),
                BASE_CURRENCY,
            )
        )
        for index, reserve in enumerate(self.reserves):
            supplied, owed = results[2 + 2 * index : 4 + 2 * index]
            is_collateral = reserve.is_collateral(int(configuration))
            for result, kind, token in (
                (supplied, PositionKind.ASSET, reserve.a_token),
                (owed, PositionKind.DEBT, reserve.debt_token),
            ):
                raw = int(need(result, f"{self.account}/{reserve.symbol} {kind.value}"))
                counted = kind is PositionKind.DEBT or is_collateral
                if prices is not None and counted:
                    value = raw * prices[index] // 10**reserve.decimals
                    ours += value if kind is PositionKind.ASSET else -value
                if not raw:
                    continue
                details = {"token": token, "market": self.market}
                if kind is PositionKind.ASSET:
                    details["collateral"] = str(is_collateral).lower()
                    if not is_collateral:
                        uncounted.add(reserve.symbol)
                out.positions.append(
                    Position(
                        out.venue,
                        self.account,
                        Asset(reserve.symbol, out.chain, reserve.underlying),
                        units(raw, reserve.decimals),
                        kind,
                        details=details,
                    )
                )
        out.reported.append(
            ReportedTotal(
                self.account,
                units(collateral - debt, BASE_DECIMALS),
                BASE_CURRENCY,
                "getUserAccountData",
                None if prices is None else units(ours, BASE_DECIMALS),
                uncounted=frozenset(uncounted),
            )
        )

    def _prices(self, result: CallResult) -> list[int] | None:
        """Aave's prices of the reserves, in base units; None (reconciled at the book's
        prices instead) when the oracle's answer is unusable."""
        if result.error is None:
            prices = [int(p) for p in result.value]
            if len(prices) == len(self.reserves):
                return prices
        return None
