"""What a fake exchange holds: one economic state that each dialect renders in its own fields.

A `Holding` is one asset in one account, described by what it *is* rather than by any exchange's
field names, so that one test state reads the same on Binance, Bybit and OKX:

| field            | meaning                                                              |
|------------------|----------------------------------------------------------------------|
| `balance`        | coins held, borrowed ones included (a borrowed coin sits in the wallet) |
| `locked`         | part of `balance` held by open orders                                |
| `borrowed`       | principal owed                                                       |
| `interest`       | interest owed, not yet paid                                          |
| `unrealized_pnl` | futures profit not yet settled into the balance                      |
| `initial_margin` / `maint_margin` | margin held for positions                           |

Its net worth is always `balance - borrowed - interest + unrealized_pnl` (`Holding.equity`); each
dialect derives its own fields from these (Binance `netAsset`, Bybit coin `equity`, OKX `eq`).

A `FakePosition` is a linear perpetual in base units, positive long and negative short; a
`Transfer` is a deposit or withdrawal with the exchange's own raw status code.

`settle_session` is Bybit's session settlement of USDC contracts (every 8 h): each one's uPnL
at the mark moves into the wallet, and its session price (`FakePosition.session_price`, Bybit's
`sessionAvgPrice`) moves to the mark; the entry price stays.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal

ZERO = Decimal(0)
STABLES = frozenset({"USD", "USDT", "USDC", "BUSD", "FDUSD", "BNFCR"})


@dataclass(frozen=True, slots=True)
class Holding:
    """One asset in one account (see the module docstring for the fields)."""

    balance: Decimal = ZERO
    locked: Decimal = ZERO
    borrowed: Decimal = ZERO
    interest: Decimal = ZERO
    unrealized_pnl: Decimal = ZERO
    initial_margin: Decimal = ZERO
    maint_margin: Decimal = ZERO

    @property
    def free(self) -> Decimal:
        return self.balance - self.locked

    @property
    def debt(self) -> Decimal:
        return self.borrowed + self.interest

    @property
    def equity(self) -> Decimal:
        return self.balance - self.debt + self.unrealized_pnl

    @property
    def empty(self) -> bool:
        return not (self.balance or self.debt or self.unrealized_pnl)


@dataclass(frozen=True, slots=True)
class FakePosition:
    """A linear perpetual: `size` in base units (+ long, - short), settled in `settle`.

    `inverse`: an inverse perpetual instead (Bybit's `BTCUSD`, Binance COIN-M's `BTCUSD_PERP`):
    `size` in USD, settled in the base coin (`settle` = `base`).
    `mark_price` None: the exchange's current mark price for the base is used.
    `liquidation_price` None: the exchange's "none" (Binance "0", Bybit and OKX "").
    `session_price`: the price of the last session settlement (`FakeState.settle_session`);
    None: not settled since the entry. The uPnL runs from it (`basis`).
    """

    base: str
    size: Decimal
    entry_price: Decimal
    settle: str = "USDT"
    mark_price: Decimal | None = None
    leverage: int = 10
    liquidation_price: Decimal | None = None
    updated_ms: int = 1_700_000_000_000
    inverse: bool = False
    session_price: Decimal | None = None
    margin_mode: str = "cross"  # OKX holds a cross and an isolated position of one swap apart

    @property
    def basis(self) -> Decimal:
        """The price the uPnL not yet settled runs from."""
        return self.entry_price if self.session_price is None else self.session_price


@dataclass(frozen=True, slots=True)
class Transfer:
    """A deposit or a withdrawal; `status` is the exchange's raw code (`"1"`, `"success"` …)."""

    asset: str
    amount: Decimal
    status: str
    txid: str
    at_ms: int
    network: str = "ETH"
    address: str = "0x00000000000000000000000000000000000000aa"
    fee: Decimal = ZERO
    id: str = "1"


@dataclass(frozen=True, slots=True)
class Market:
    """A spot pair and its linear perpetual, both listed (`BTC`/`USDT`)."""

    base: str
    quote: str = "USDT"


@dataclass
class FakeState:
    """Everything a fake exchange serves; tests change it through `FakeExchange`'s methods.

    `holdings[account][asset]`; `prices[base]` is the last price against USDT and
    `marks[base]` the perpetual's mark price (the last price when unset). `multi_assets` is
    Binance USDⓈ-M's position mode (`/fapi/v1/multiAssetsMargin`).
    """

    markets: list[Market] = field(
        default_factory=lambda: [Market("BTC"), Market("ETH"), Market("ETH", "USDC")]
    )
    # the bases of the inverse perpetuals listed (Bybit `BTCUSD`, settled in BTC)
    inverse: tuple[str, ...] = ("BTC", "ETH")
    holdings: dict[str, dict[str, Holding]] = field(default_factory=dict)
    positions: list[FakePosition] = field(default_factory=list)
    deposits: list[Transfer] = field(default_factory=list)
    withdrawals: list[Transfer] = field(default_factory=list)
    prices: dict[str, Decimal] = field(
        default_factory=lambda: {"BTC": Decimal(60000), "ETH": Decimal(3000)}
    )
    marks: dict[str, Decimal] = field(default_factory=dict)
    page_size: int = 200
    # Binance USDⓈ-M: multi-assets mode sums every asset in USD; single-asset mode only USDT
    multi_assets: bool = True
    now_ms: Callable[[], int] = field(default=lambda: time.time_ns() // 1_000_000)

    def account(self, name: str) -> dict[str, Holding]:
        """The holdings of `name`, without the empty ones, in a stable order."""
        held = self.holdings.get(name, {})
        return {asset: held[asset] for asset in sorted(held) if not held[asset].empty}

    def usd(self, asset: str) -> Decimal:
        """The asset's price in USD (stablecoins at 1; an unlisted asset at 0)."""
        if asset in STABLES:
            return Decimal(1)
        return self.prices.get(asset, ZERO)

    def mark(self, base: str) -> Decimal:
        return self.marks.get(base, self.prices.get(base, ZERO))

    def position_mark(self, position: FakePosition) -> Decimal:
        return position.mark_price if position.mark_price is not None else self.mark(position.base)

    def position_pnl(self, position: FakePosition) -> Decimal:
        """In the settle coin, since the last settlement: an inverse contract's
        `Q × (1/entry − 1/mark)` base coins."""
        move = self.position_mark(position) - position.basis
        if position.inverse:
            return position.size * move / (position.basis * self.position_mark(position))
        return position.size * move

    def settle_session(self, account: str, settle: str = "USDC") -> Decimal:
        """Bybit's session settlement: every linear position settled in `settle` moves its uPnL
        at the mark into `account`'s wallet (and out of its coin's uPnL) and starts again from
        the mark. Returns the amount settled."""
        settled = ZERO
        kept = []
        for position in self.positions:
            if position.settle == settle and not position.inverse and position.size:
                settled += self.position_pnl(position)
                position = replace(position, session_price=self.position_mark(position))
            kept.append(position)
        self.positions = kept
        held = self.holdings.setdefault(account, {})
        coin = held.get(settle, Holding())
        held[settle] = replace(
            coin, balance=coin.balance + settled, unrealized_pnl=coin.unrealized_pnl - settled
        )
        return settled

    def position_value(self, position: FakePosition) -> Decimal:
        """The position's size at its entry price, in the settle coin."""
        if position.inverse:
            return abs(position.size) / position.entry_price
        return abs(position.size) * position.entry_price

    def perps(self) -> list[Market]:
        return [m for m in self.markets if m.quote in STABLES]


def liquidation(position: FakePosition, none: str) -> str:
    """A position's liquidation price as the exchange sends it, `none` when it has none."""
    price = position.liquidation_price
    return none if price is None else num(price)


def num(value: Decimal | int) -> str:
    """A number as the exchanges send it: a plain decimal string, no exponent."""
    text = format(Decimal(value), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in {"", "-0"} else text
