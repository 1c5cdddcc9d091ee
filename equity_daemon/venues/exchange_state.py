"""What an exchange venue knows of its accounts, and the one rule that keeps REST and pushes in
step, whichever path writes (a fetch, the stream's resync, a poll, a read a push cued, a read
that timed out and finishes late).

**Each account type's state is the REST answer whose requests went out last, with every push
heard since those requests went out applied on top, in the order heard.** Hence:

* an answer never writes over an account that an answer sent later has written (`newer`): a
  read that finishes after a later one would take the account back in time;
* the pushes applied while a REST read is out are kept (`journal`) and handed back when its
  answer is written (`write`), to be applied again on top of it: the answer may be older;
* a push heard before the requests of the answer its account holds went out is in that answer
  already (`covered`): applying it would take the account back;
* an account whose pushes leave out what its lines need (the debt of a margin account:
  `mapping.READ_ON_PUSH`) takes no push at all. A push to it is a cue (`cue`): the account is
  `due` until an answer whose requests went out after that push is written, so its lines always
  come from one REST answer (holdings and debt of the same moment) and a borrow never shows as
  coins without their debt.

Times are the venue clock's monotonic seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from equity_daemon.venues.exchanges import Lines


@dataclass(frozen=True, slots=True)
class Heard:
    """What the stream hears, and when: a push (`account`, kind "balance" or "positions", the
    raw message), a REST read's answer (account "", kind "resync", "poll" or "cue", message
    (`Snapshot`, `Read`)) or the end of the stream (account "", kind "error" or "cut", message
    the exception)."""

    account: str
    kind: str
    message: Any
    at: float


@dataclass(eq=False, slots=True)
class Read:
    """One REST read of the venue's state, open from when its requests go out until its answer
    is written or dropped."""

    started: float


@dataclass
class AccountAnswer:
    """One account type's raw REST answers: balance, extra call, mode, open positions by key."""

    info: Any
    extra: Any
    mode: Any = None
    positions: dict[Any, tuple[Any, Mapping[str, Any]]] = field(default_factory=dict)
    pushed: bool = False  # a push patched `info` since the REST answer
    positions_pushed: bool = False  # ... or the positions


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one REST read found: account types' answers and the transfers under way (None: not
    read)."""

    accounts: Mapping[str, AccountAnswer]
    transfers: Lines | None


class ExchangeState:
    """The accounts' answers (`accounts`), the transfers under way, and what the rule above
    needs: when each was written, the reads out, the pushes applied meanwhile, the cues."""

    def __init__(self) -> None:
        self.accounts: dict[str, AccountAnswer] = {}
        self.transfers: Lines | None = None
        self._written: dict[str, float] = {}  # account -> when its answer's requests went out
        self._transfers_written = -math.inf
        self._reads: list[Read] = []
        self._journal: list[Heard] = []  # pushes applied while a read is out
        self._cued: dict[str, float] = {}  # account -> the last push heard (READ_ON_PUSH)

    def open(self, at: float) -> Read:
        """A read whose requests go out now (`at`)."""
        read = Read(at)
        self._reads.append(read)
        return read

    def close(self, read: Read) -> None:
        """The read's answer is written or dropped; pushes no open read may need are let go."""
        if read in self._reads:
            self._reads.remove(read)
        oldest = min((r.started for r in self._reads), default=math.inf)
        self._journal = [heard for heard in self._journal if heard.at >= oldest]

    def pending(self, read: Read | None) -> bool:
        """Whether `read` is out (sent, its answer not yet written)."""
        return read is not None and read in self._reads

    def newer(self, answers: Mapping[str, AccountAnswer], read: Read) -> dict[str, AccountAnswer]:
        """The answers of `read` that may be written: those of accounts no later read wrote."""
        return {a: found for a, found in answers.items() if read.started >= self._when(a)}

    def write(
        self, answers: Mapping[str, AccountAnswer], transfers: Lines | None, read: Read
    ) -> list[Heard]:
        """Make `answers` (from `newer`) and `transfers` the state; returns the pushes to apply
        again on top of them, in the order heard."""
        for account, found in answers.items():
            self.accounts[account] = found
            self._written[account] = read.started
        if transfers is not None and read.started >= self._transfers_written:
            self.transfers = transfers
            self._transfers_written = read.started
        return [h for h in self._journal if h.account in answers and h.at >= read.started]

    def covered(self, heard: Heard) -> bool:
        """Whether the answer `heard`'s account holds was asked for after the push was heard."""
        return heard.at < self._when(heard.account)

    def journal(self, heard: Heard) -> None:
        """A push just applied: kept while a read that may be older than it is out."""
        if self._reads:
            self._journal.append(heard)

    def cue(self, heard: Heard) -> None:
        """A push to an account that takes none: it is due for a read."""
        self._cued[heard.account] = max(heard.at, self._cued.get(heard.account, -math.inf))

    def due(self) -> list[str]:
        """The cued accounts whose answer was asked for before their last push."""
        return sorted(a for a, at in self._cued.items() if at >= self._when(a))

    def _when(self, account: str) -> float:
        return self._written.get(account, -math.inf)
