"""One open contract (a perpetual or a dated future) as an exchange reports it: its hedge line
and the two legs that put its unrealised PnL in equity (`Lines.perp` builds them).

**A contract is worth what its own market says.** An open contract's unrealised PnL enters
equity as two `unrealized_pnl` lines (neither an asset nor a debt) whose *amounts* do not depend
on any price. One of them is an amount of the contract itself, an asset named by exchange and
contract (`bybit:ETH/USDT:USDT`, `contract_symbol`) whose price is the contract's mark: the
runtime asks the exchange for it at every cycle, beside the spot prices, and falls back to the
mark the position's own answer carried (`venues/contract_marks`). The calculator values the
legs like any line:

| contract | leg 1                  | leg 2                       | mark M  | sum at M             |
|----------|------------------------|-----------------------------|---------|----------------------|
| linear   | `size` of the contract | `−size × basis` settle coin | C/settle| `size × (M − basis)` |
| inverse  | `Q / basis` base coin  | `−Q` of the contract        | base/C  | `Q/basis − Q/M`      |

(C: the contract's asset; `size` signed, in base units; `Q` signed, an inverse contract's face
in USD: one unit of it is 1 USD of the contract, worth 1/M base coin.) The sum, in the settle
coin (linear) or the base coin (inverse), is the exchange's own uPnL, valued at the contract's
own mark: opening a position at a premium to spot changes nothing, and a basis move is a move.
`basis` is the entry price, or, where the exchange has already settled the PnL into the wallet
(Bybit's USDC contracts, every 8 h session), the price it settled at (`Perp.settled_price`):
only what is not yet settled is uPnL.

**Reconciliation, at the exchange's marks.** An account with contracts reports its total with
the uPnL the same answer holds (`Lines.total(..., unrealized_pnl=...)`: Binance
`totalUnrealizedProfit`, Bybit coin `unrealisedPnl`, OKX coin `upl`) and, beside it, our legs'
uPnL at the marks the position answers carried (`ReportedTotal.positions_pnl`): both are of the
moment of the read, so the calculator compares the exchange's total with our lines at those
marks, and names what the positions read do not explain (a position never asked for, an option,
a category not requested). A push patching the balance or a position breaks that moment: the
account is then compared without the positions (the wallet only) until the next REST snapshot.

**Sizes are checked.** Each position's contracts × contract size × price is compared with the
notional the exchange reports for it (`check_notional`): a wrong contract size fails the line
with the reason, never a silent wrong size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from equity_daemon.model import decimal_str
from equity_daemon.venues.exchanges.fields import ZERO, BadField, text


def contract_symbol(exchange: str, symbol: str) -> str:
    """The asset a contract's priced leg is an amount of, named by exchange and ccxt's unified
    symbol (`bybit:ETH/USDT:USDT`, `okx:BTC/USD:BTC-250328`); its price is the contract's mark."""
    return f"{exchange}:{symbol}"


# how far the exchange's notional may be from contracts × contract size × price: a wrong
# contract size is off by a factor (10, 100, 1000); this leaves room for the exchange's
# rounding and for OKX's notional in USD of a USDT-quoted contract
NOTIONAL_TOLERANCE = Decimal("0.05")


def check_notional(symbol: str, computed: Decimal, reported: Decimal, what: str) -> None:
    """Fails the position (`BadField`, naming it) when the exchange's notional `reported`
    (its field `what`) is not `computed` (contracts × contract size × price) within
    `NOTIONAL_TOLERANCE`: a contract size read wrong is never a silently wrong size."""
    computed, reported = abs(computed), abs(reported)
    if abs(computed - reported) > NOTIONAL_TOLERANCE * max(computed, reported):
        raise BadField(
            f"{symbol} size does not match its notional: contracts × contract size × price "
            f"is {decimal_str(computed)}, the exchange's {what} {decimal_str(reported)}"
        )


@dataclass(frozen=True, slots=True)
class Perp:
    """One open perpetual (or dated future) as an exchange reports it.

    `contracts` is unsigned, `side` says `long` or `short`; `contract_size` is in base units per
    contract for a linear contract, in USD per contract for an inverse one. `position_side`
    keeps apart the long and short positions of one symbol in hedge mode (`BOTH`, `LONG`…).
    `market_id` (the exchange's own id, `ETHUSDT`) and `market_type` (`swap`, `future`) say
    how to ask for the contract's mark. `settled_price`: the price up to which the exchange has
    already settled the position's PnL into the wallet (Bybit's USDC contracts); the legs count
    only what is not settled yet.
    """

    symbol: str
    base: str
    settle: str
    side: str
    contracts: Decimal
    contract_size: Decimal
    entry_price: Decimal
    mark_price: Decimal | None
    unrealized_pnl: Decimal
    liquidation_price: Decimal | None = None
    leverage: Decimal | None = None
    margin_mode: str | None = None
    position_side: str = "BOTH"
    inverse: bool = False
    market_id: str | None = None
    market_type: str = "swap"
    settled_price: Decimal | None = None

    @property
    def sign(self) -> Decimal:
        return Decimal(1) if self.side == "long" else Decimal(-1)

    @property
    def usd(self) -> Decimal:
        """An inverse contract's size in USD."""
        return self.contracts * self.contract_size

    @property
    def base_size(self) -> Decimal:
        """Signed exposure in base units (an inverse contract's at its mark, else its entry)."""
        if not self.inverse:
            return self.sign * self.contracts * self.contract_size
        price = self.mark_price or self.entry_price
        return self.sign * self.usd / price if price else ZERO

    @property
    def basis(self) -> Decimal:
        """The price the uPnL not yet settled runs from: the settlement's, else the entry."""
        return self.entry_price if self.settled_price is None else self.settled_price

    @property
    def pnl_currency(self) -> str:
        return self.base if self.inverse else self.settle

    def mark_edge(self, contract: str) -> tuple[str, str]:
        """The price edge (base, quote) whose rate is the contract's mark (module table)."""
        return (self.base, contract) if self.inverse else (contract, self.settle)

    def legs(self, contract: str) -> tuple[tuple[str, Decimal], tuple[str, Decimal]]:
        """The two uPnL lines whose value at any mark M of `contract` is the uPnL at M (module
        table)."""
        if not self.basis:
            raise BadField(f"{self.symbol} has no entry price")
        if not self.inverse:
            size = self.base_size
            return (contract, size), (self.settle, -size * self.basis)
        return (self.base, self.sign * self.usd / self.basis), (contract, -self.sign * self.usd)

    def pnl_at(self, mark: Decimal) -> Decimal:
        """The uPnL not yet settled at `mark`, in `pnl_currency`: what the legs are worth."""
        if not self.inverse:
            return self.base_size * (mark - self.basis)
        if not (self.basis and mark):
            raise BadField(f"{self.symbol} has no entry or mark price")
        return self.sign * self.usd * (1 / self.basis - 1 / mark)

    @property
    def notional(self) -> Decimal | None:
        """In the settle currency (linear: quote units; inverse: USD)."""
        if self.inverse:
            return self.usd
        return None if self.mark_price is None else abs(self.base_size) * self.mark_price

    def details(self) -> dict[str, str | Decimal]:
        found: dict[str, Decimal | str | None] = {
            "symbol": self.symbol,
            "side": self.side,
            "contracts": self.contracts,
            "contract_size": self.contract_size,
            "notional": self.notional,
            "entry_price": self.entry_price,
            "mark_price": self.mark_price,
            "unrealized_pnl": self.unrealized_pnl,
            "pnl_currency": self.pnl_currency,
            "settled_price": self.settled_price,
            "market_id": self.market_id,
            "market_type": self.market_type,
            "liquidation_price": self.liquidation_price,
            "leverage": self.leverage,
            "margin_mode": self.margin_mode,
            "settle": self.settle,
            "contract": "inverse" if self.inverse else "linear",
        }
        return {k: v for k, v in found.items() if v is not None}


def contract_of(market: Mapping[str, Any]) -> tuple[str, str, str, bool, Decimal]:
    """What only ccxt's market metadata knows about a contract (none of it is a balance):
    unified symbol, base, settle coin, inverse or not, and contract size."""
    symbol, base, settle = text(market, "symbol"), text(market, "base"), text(market, "settle")
    size = market.get("contractSize")
    contract_size = Decimal(str(size)) if size not in (None, "") else Decimal(1)
    return symbol, base, settle, bool(market.get("inverse")), contract_size


def market_ref(market: Mapping[str, Any]) -> tuple[str, str]:
    """The exchange's own id of a contract (`ETHUSDT`, `ETH-USDT-SWAP`) and its ccxt type
    (`swap`, `future`): what asking for its mark needs (`Perp.market_id`, `market_type`)."""
    return text(market, "id"), str(market.get("type") or "swap")
