"""Configuration: one TOML file, overridable by `EQUITY_DAEMON_*` environment variables.

Nesting in the environment uses `__`, and a number is a list's item (`environment.py`):
`EQUITY_DAEMON_BOOKS__BASIS__THRESHOLD_PERCENT=0.5`,
`EQUITY_DAEMON_BOOKS__BASIS__VENUES__0__API_KEY=…`.

Secrets (webhook URLs and signing secrets, Apprise URLs, the HTTP bearer token) are `SecretStr`.
Each can be given directly or as `<field>_file`: a path, or a bare name looked up in the systemd
credentials directory (`$CREDENTIALS_DIRECTORY`) and then in `/run/secrets` (Docker).

TOML floats are read as `Decimal`, so `threshold_percent = 0.1` is exactly one tenth.

Every number is finite and bounded above, so no accepted value can overflow at runtime (a
`timedelta`, a sleep): intervals at most a day, timeouts at most an hour, max ages at most a week,
`keep_all_days` at most ten years. Settings that depend on each other are checked together: a
quote cache or a poll interval at or above the max age it feeds would make fresh data look stale.

`load_settings` turns every problem into one readable line naming the field path
(`books.basis.venues[2].demo.seed: Input should be a valid integer`) and never echoes a value.
"""

from __future__ import annotations

import codecs
import os
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from equity_daemon.environment import EnvironmentOverFile
from equity_daemon.errors import ConfigError
from equity_daemon.model import ShareClass
from equity_daemon.validation import Amount, Rate, describe_errors
from equity_daemon.venues.registry import registry_for

# Names end up in metric labels and log fields: keep them short and tame.
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
# An asset symbol as venues report it (`USDT`, `wstETH`, `aEthUSDT`).
Symbol = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S+$")]

MINUTE, HOUR, DAY, WEEK = 60, 3600, 86_400, 7 * 86_400
# Durations must be finite and bounded: `inf` or `1e15` once passed and then overflowed
# `timedelta` at runtime, which made /healthz and /readyz answer 500 forever.
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Interval = Annotated[Seconds, Field(le=DAY)]  # how often something runs or is retried
Timeout = Annotated[Seconds, Field(le=HOUR)]  # how long one attempt may take
MaxAge = Annotated[Seconds, Field(le=WEEK)]  # how old data may be and still count
DOCKER_SECRETS = Path("/run/secrets")
# Fields every venue kind has
VenueName = Annotated[
    Name, Field(description="The venue's name, unique across books; in metrics, logs and events.")
]
VenueMaxAge = Annotated[
    MaxAge | None,
    Field(
        description="Data older than this makes the book incomplete; default: the book's "
        "`venue_max_age_seconds`."
    ),
]


class Section(BaseModel):
    """Every section rejects unknown keys (a typo must not silently fall back to a default)."""

    # hide_input_in_errors: a ValidationError's text must never carry a secret's value
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, info in cls.model_fields.items():
            key = f"{name}_file"
            if key in data and "SecretStr" in repr(info.annotation):
                if name in data:  # silently preferring one would hide a mistake
                    raise ValueError(f"give {name} or {key}, not both")
                secret = read_secret_file(key, data.pop(key))
                if "tuple" in repr(info.annotation):  # a list of secrets: one per line
                    data[name] = [line.strip() for line in secret.splitlines() if line.strip()]
                else:
                    data[name] = secret
        return data


def read_secret_file(field: str, where: object) -> str:
    """A secret's value from a file: an absolute path, or a credential/Docker secret name.

    A bare name is looked up in the systemd credentials directory, as itself and as
    `secrets_<name>` (what systemd calls a file of the folder the unit loads whole with
    `LoadCredential=secrets:/etc/equity-daemon/secrets`), then in `/run/secrets` (Docker). A
    file that exists but cannot be read (permissions: a container runs as uid 10001) or holds
    nothing is named as such, never skipped silently.
    """
    if not isinstance(where, str) or not where:
        raise ValueError(f"{field} must be a file path or a credential name")
    path = Path(where)
    candidates = [path] if path.is_absolute() else []
    if not path.is_absolute():
        if credentials := os.environ.get("CREDENTIALS_DIRECTORY"):
            candidates += [Path(credentials) / path, Path(credentials) / f"secrets_{path}"]
        candidates.append(DOCKER_SECRETS / path)
    for candidate in candidates:
        try:
            secret = candidate.read_text().strip()
        except FileNotFoundError:
            continue
        except PermissionError:
            raise ValueError(
                f"{field}: cannot read secret {where!r} ({candidate}: permission denied to "
                f"uid {os.getuid()})"
            ) from None
        except OSError:
            continue
        except UnicodeDecodeError:  # its message quotes a byte of the secret
            raise ValueError(f"{field}: secret {where!r} is not UTF-8 text") from None
        if not secret:
            raise ValueError(f"{field}: secret {where!r} is empty ({candidate})")
        return secret
    looked = ", ".join(str(c) for c in candidates)
    raise ValueError(f"{field}: cannot read secret {where!r} (looked in {looked})")


class DemoVenue(Section):
    """A simulated basis book (spot LST, perp short, margin) with a random-walk ETH price."""

    kind: Literal["demo"] = Field(description="The simulated basis book: no keys, no network.")
    name: VenueName
    interval_seconds: Interval = Field(
        default=5.0, description="One market step (and one pushed report) every this many seconds."
    )
    timeout_seconds: Timeout = Field(default=5.0, description="Limit for one fetch.")
    max_age_seconds: VenueMaxAge = None
    keepalive_seconds: Interval | None = Field(
        default=None,
        description=(
            "A stream silent this long counts as down (fetches cover until it speaks); default: 3 "
            "× `interval_seconds`."
        ),
    )
    # an identifier, not a quantity: any integer will do
    seed: int | None = Field(
        default=None, description="Seed of the random walk; omit for a different walk each run."
    )
    volatility: Decimal = Field(
        default=Decimal("0.0005"),
        ge=0,
        le=Decimal("0.1"),
        description="Largest relative move of the ETH price per step.",
    )
    funding_per_step: Decimal = Field(
        default=Decimal(25),
        ge=0,
        le=Decimal(1_000_000),
        description="USDT of funding earned per step; 0 keeps equity flat whatever ETH does.",
    )


class ManualVenue(Section):
    """Positions (and optional quotes) from a TOML or JSON file the operator edits."""

    kind: Literal["manual"] = Field(description="Positions from a file an operator edits.")
    name: VenueName
    path: Path = Field(
        description=(
            "The TOML or JSON file (by extension); a relative path is from the working directory."
        )
    )
    interval_seconds: Interval = Field(
        default=2.0,
        description="How often the file is read (it is parsed again only when it changed).",
    )
    timeout_seconds: Timeout = Field(default=5.0, description="Limit for one read.")
    max_age_seconds: VenueMaxAge = None


# The account types an exchange venue can read, per exchange (see docs/exchanges.md).
EXCHANGE_ACCOUNTS: dict[str, tuple[str, ...]] = {
    "binance": (
        "spot",
        "cross_margin",
        "isolated_margin",
        "usdm",
        "portfolio_margin",
        "funding",
        "coinm",
    ),
    "bybit": ("unified", "funding"),
    "okx": ("trading", "funding"),
}
# Account types that read wallets another account type on the same key already reads, and why.
# Binance portfolio margin is not a separate account: it puts the account's own cross-margin,
# USDⓈ-M and COIN-M wallets under one margin, and `/papi/v1/balance` returns them all
# (`crossMarginAsset`, `umWalletBalance`, `cmWalletBalance`). `cross_margin`
# (`/sapi/v1/margin/account`) and `usdm` (`/fapi/v3/account`) beside it would read the same
# money a second time, or, where Binance answers those classic endpoints with an error for a
# portfolio-margin account, fail every fetch. Isolated margin, spot and funding stay outside it.
SAME_WALLETS: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ("binance", "portfolio_margin"): (
        ("cross_margin", "usdm", "coinm"),
        "a portfolio-margin account's cross-margin, USDⓈ-M and COIN-M wallets are the ones "
        "portfolio_margin reads (/papi/v1/balance crossMarginAsset, umWalletBalance, "
        "cmWalletBalance), so the "
        "same money would count twice; list portfolio_margin without them (a classic account "
        "is another key: another venue)",
    ),
}


class ExchangeVenue(Section):
    """One exchange account (Binance, Bybit or OKX) read over REST with a read-only key.

    `accounts` lists the account types to read, each fetched every poll; `sandbox` uses the
    exchange's test network; `base_url` sends every request to another scheme and host (a proxy,
    a regional host, a local test server). `rate_limit` keeps ccxt's client-side throttle on:
    turn it off only for a local test server. `in_transit` reads deposit and withdrawal history
    for the transfers still under way.

    `stream` follows the account types that have a private websocket stream here (each
    exchange mapping's `STREAMED`: see Exchange account types) between REST snapshots; others
    are polled. A REST snapshot replaces the streamed state every
    `resync_seconds`; meanwhile what no push carries (debt, interest, the other account types,
    transfers) is polled every `interval_seconds`, and an account whose pushes leave its debt
    out is read at once on a push. A stream silent for `keepalive_seconds` counts as down and
    REST polling covers at `interval_seconds`.
    """

    kind: Literal["binance", "bybit", "okx"] = Field(description="The exchange.")
    name: VenueName
    api_key: SecretStr = Field(description="The API key: read permission only.")
    secret: SecretStr = Field(description="The API key's secret.")
    password: SecretStr | None = Field(
        default=None, description="OKX only, and required there: the API key's passphrase."
    )
    accounts: tuple[str, ...] = Field(
        description=(
            "The account types read on every fetch, each once (see Exchange account types)."
        )
    )
    sandbox: bool = Field(
        default=False,
        description="Use the exchange's testnet (Binance's has no margin or funding).",
    )
    base_url: AnyHttpUrl | None = Field(
        default=None,
        description=(
            "Send every REST and websocket request to this scheme and host, keeping the paths (a "
            "proxy, a regional host, a local test server); no query, fragment or credentials."
        ),
    )
    rate_limit: bool = Field(
        default=True,
        description=(
            "ccxt's client-side throttle, one per exchange host; off only for a local test server."
        ),
    )
    in_transit: bool = Field(
        default=True,
        description=(
            "Also read the deposit and withdrawal history: transfers under way are `in_transit` "
            "lines."
        ),
    )
    stream: bool = Field(
        default=True,
        description=(
            "Also follow the account types that have a private websocket stream here; the others "
            "are polled."
        ),
    )
    resync_seconds: Interval = Field(
        default=300.0,
        description="With a stream: a whole REST read replaces the streamed state this often.",
    )
    keepalive_seconds: Interval = Field(
        default=30.0,
        description=(
            "With a stream: silent this long, it counts as down and REST polls cover at "
            "`interval_seconds`."
        ),
    )
    interval_seconds: Interval = Field(
        default=10.0,
        description=(
            "REST polling period; with a live stream, for what no push carries (debt, interest, "
            "unstreamed account types, transfers)."
        ),
    )
    timeout_seconds: Timeout = Field(
        default=20.0, description="Limit for one fetch of every account type."
    )
    max_age_seconds: VenueMaxAge = None

    @model_validator(mode="after")
    def _accounts_of_this_exchange(self) -> ExchangeVenue:
        known = EXCHANGE_ACCOUNTS[self.kind]
        if not self.accounts:
            raise ValueError(f"accounts: name at least one of {', '.join(known)}")
        unknown = [a for a in self.accounts if a not in known]
        if unknown:
            raise ValueError(
                f"accounts: {self.kind} has no account type {', '.join(map(repr, unknown))}; "
                f"use {', '.join(known)}"
            )
        twice = sorted({a for a in self.accounts if self.accounts.count(a) > 1})
        if twice:
            raise ValueError(f"accounts: lists {', '.join(twice)} more than once")
        for (kind, account), (overlapping, why) in SAME_WALLETS.items():
            also = [a for a in overlapping if a in self.accounts]
            if kind == self.kind and account in self.accounts and also:
                raise ValueError(f"accounts: {', '.join(also)} beside {account}: {why}")
        if self.kind == "okx" and self.password is None:
            raise ValueError("password: OKX keys need their passphrase (password or password_file)")
        if self.kind != "okx" and self.password is not None:
            raise ValueError(f"password: {self.kind} keys have no passphrase")
        if problem := _base_url_problem(self.base_url):
            raise ValueError(f"base_url {problem}")
        return self


def _base_url_problem(url: AnyHttpUrl | None) -> str | None:
    """What makes an exchange's `base_url` unusable (never echoing it), if anything."""
    if url is not None and (url.query or url.fragment):
        return "must not have a query or a fragment"
    if url is not None and (url.username or url.password):
        return "must not carry credentials"
    return None


Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]


class FeedSettings(Section):
    """A Chainlink aggregator read in the chain venue's multicall: 1 `base` = answer `quote`.

    `address` and `heartbeat_seconds` default to the built-in registry's feed for the pair; an
    answer older than the heartbeat plus `stale_margin_seconds` at the block read, or not above
    zero, is no quote.
    """

    base: Symbol = Field(description="The feed's base: 1 base = answer quote.")
    quote: Symbol = Field(description="The feed's quote currency.")
    address: Address | None = Field(
        default=None,
        description="The aggregator's address; default: the built-in feed of the pair.",
    )
    heartbeat_seconds: MaxAge | None = Field(
        default=None,
        description="The feed updates at least this often; default: the built-in feed's.",
    )
    stale_margin_seconds: Annotated[float, Field(ge=0, le=DAY, allow_inf_nan=False)] = Field(
        default=600.0,
        description="An answer older than the heartbeat plus this, at the block read, is no quote.",
    )


class VaultSettings(Section):
    """An ERC-4626 vault: its shares are the asset `symbol`, worth `convertToAssets` of `asset`."""

    symbol: Symbol = Field(description="The symbol of the vault's shares, as holdings name them.")
    address: Address = Field(description="The ERC-4626 vault contract.")
    asset: Symbol = Field(
        description=(
            "The symbol of the vault's underlying asset: a share is worth `convertToAssets` of it."
        )
    )


class WithdrawalNftSettings(Section):
    """Another EtherFi WithdrawRequestNFT (same ABI) holding an address's pending requests:
    `requests` ids on it, and those found in its mint logs from `scan_from_block`."""

    contract: Address = Field(description="A WithdrawRequestNFT contract with EtherFi's ABI.")
    requests: tuple[Annotated[int, Field(ge=1, lt=2**32)], ...] = Field(
        default=(), description="Ids of the address's pending requests on it."
    )
    scan_from_block: int | None = Field(
        default=None,
        ge=0,
        lt=2**63,
        description="Also find the address's requests in its mint logs, from this block.",
    )

    @model_validator(mode="after")
    def _something_to_read(self) -> WithdrawalNftSettings:
        if not self.requests and self.scan_from_block is None:
            raise ValueError("give requests, scan_from_block or both")
        return self


class PriorityQueueSettings(Section):
    """An EtherFi PriorityWithdrawalQueue (whitelisted addresses) holding an address's pending
    requests: found in its `WithdrawRequestCreated` logs from `scan_from_block`."""

    contract: Address = Field(
        description="The PriorityWithdrawalQueue's (proxy) address; none is built in."
    )
    scan_from_block: int = Field(
        ge=0,
        lt=2**63,
        description=(
            "Find the address's requests in its `WithdrawRequestCreated` logs from this block."
        ),
    )


class HoldingSettings(Section):
    """One address and what it holds on the chain; each protocol is its own account line.

    `wallet` names `ETH` (native) or tokens of the venue's `tokens` (or the registry's); only
    those are ever valued. `aave` names markets, `vaults` names `vaults` entries,
    `etherfi_requests` the ids of the address's pending withdrawal requests, to which
    `etherfi_scan_from_block` adds those found in the NFT's mint logs (`Transfer` from 0), both
    on `contracts.etherfi_withdrawals`; `etherfi_withdrawal_nfts` lists other request NFTs,
    `etherfi_priority_queues` the PriorityWithdrawalQueues the address uses.
    """

    address: Address = Field(description="The address read.")
    wallet: tuple[Symbol, ...] = Field(
        default=(),
        description=(
            "`ETH` (native) and tokens (of `tokens` or the built-in ones) held in the wallet; only"
            " these are valued."
        ),
    )
    aave: tuple[Name, ...] = Field(
        default=(),
        description=(
            "Aave v3 markets the address supplies to or borrows from (mainnet: `core`, `prime`, "
            "`etherfi`)."
        ),
    )
    lido: tuple[Literal["stETH", "wstETH"], ...] = Field(
        default=(), description="Lido tokens held."
    )
    etherfi: tuple[Literal["eETH", "weETH"], ...] = Field(
        default=(), description="EtherFi tokens held."
    )
    etherfi_requests: tuple[Annotated[int, Field(ge=1, lt=2**32)], ...] = Field(
        default=(),
        description=(
            "Ids of the address's pending EtherFi withdrawal requests (locked ETH lines), read "
            "while configured."
        ),
    )
    # find this address's request ids from the NFT's mint logs, scanning from this block
    etherfi_scan_from_block: int | None = Field(
        default=None,
        ge=0,
        lt=2**63,
        description=(
            "Also find the address's request ids in the WithdrawRequestNFT's mint logs, from this "
            "block."
        ),
    )
    etherfi_withdrawal_nfts: tuple[WithdrawalNftSettings, ...] = Field(
        default=(),
        max_length=8,
        description="Other WithdrawRequestNFT contracts holding the address's requests.",
    )
    etherfi_priority_queues: tuple[PriorityQueueSettings, ...] = Field(
        default=(),
        max_length=4,
        description=(
            "PriorityWithdrawalQueues holding the address's requests (whitelisted addresses)."
        ),
    )
    vaults: tuple[Symbol, ...] = Field(
        default=(), description="Symbols of `vaults` entries whose shares the address holds."
    )


class ChainVenue(Section):
    """One EVM chain read through JSON-RPC: every holding at one block in one multicall.

    `rpc` lists the endpoints in order of preference (their URLs usually hold API keys: inline,
    from the environment, or `rpc_file` with one URL per line). Addresses of tokens, Aave
    markets, other contracts and feeds come from the built-in registry of `chain_id` (Ethereum
    mainnet is built in) and are overridden by `multicall`, `tokens`, `aave_markets`,
    `aave_oracles`, `contracts`, `feeds`.
    """

    kind: Literal["chain"] = Field(
        description="An EVM chain read over JSON-RPC, every holding at one block."
    )
    name: VenueName
    chain: Name = Field(default="ethereum", description="The chain's name, in messages.")
    chain_id: int = Field(
        ge=1,
        lt=2**63,
        description=(
            "Checked on every endpoint at start and after every failover; 1 (Ethereum) has built-"
            "in addresses."
        ),
    )
    rpc: tuple[SecretStr, ...] = Field(
        min_length=1,
        max_length=16,
        description=(
            "JSON-RPC endpoint URLs, preferred first (they embed keys; `rpc_file`: one URL per "
            "line)."
        ),
    )
    confirmations: int = Field(
        default=3, ge=0, le=64, description="Read the block this many below the endpoint's head."
    )
    multicall: Address | None = Field(
        default=None, description="The Multicall3 contract; default: the built-in one."
    )
    tokens: dict[Symbol, Address] = Field(
        default={},
        description="ERC-20 contracts by symbol, over the built-in ones; also names Aave reserves.",
    )
    aave_markets: dict[Name, Address] = Field(
        default={}, description="Aave v3 Pool contracts by market name, over the built-in ones."
    )
    # a market's AaveOracle, instead of the one its Pool's addresses provider names
    aave_oracles: dict[Name, Address] = Field(
        default={},
        description=(
            "A market's AaveOracle, instead of the one its Pool's addresses provider names."
        ),
    )
    contracts: dict[Name, Address] = Field(
        default={},
        description="Other contracts by role (`etherfi_withdrawals`), over the built-in ones.",
    )
    vaults: tuple[VaultSettings, ...] = Field(
        default=(), description="ERC-4626 vaults the holdings may name."
    )
    feeds: tuple[FeedSettings, ...] = Field(
        default=(),
        description=(
            "Chainlink feeds read in the same multicall; each is a price source for its pair."
        ),
    )
    holdings: tuple[HoldingSettings, ...] = Field(
        min_length=1, description="The addresses read, and what each holds."
    )
    interval_seconds: Interval = Field(default=12.0, description="Polling period.")
    timeout_seconds: Timeout = Field(
        default=20.0, description="Limit for one fetch, failovers included."
    )
    max_age_seconds: VenueMaxAge = None
    rpc_timeout_seconds: Timeout = Field(default=5.0, description="Limit for one JSON-RPC request.")
    # after a failover, the preferred endpoint is tried again every this many fetches
    retry_preferred_every: int = Field(
        default=10,
        ge=1,
        le=10_000,
        description=(
            "After a failover, the preferred endpoint is tried again every this many fetches."
        ),
    )
    discovery_interval_seconds: Interval = Field(
        default=3600.0,
        description=(
            "Token decimals, Aave reserves and vault assets are discovered again this often."
        ),
    )
    # blocks per eth_getLogs request when scanning for withdrawal requests
    log_range_blocks: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Blocks per `eth_getLogs` request when scanning for withdrawal requests.",
    )
    # calls per aggregate3 eth_call (the block proof's three included); past it, split
    # (1,000 balanceOf reads cost about 10M gas, inside every provider's eth_call cap)
    max_calls: int = Field(
        default=1024,
        ge=4,
        le=5000,
        description=(
            "Calls per `aggregate3` `eth_call` (the block proof's three included); past it, split."
        ),
    )

    @model_validator(mode="after")
    def _names_resolve(self) -> ChainVenue:
        registry = registry_for(self.chain_id)
        tokens = {**registry.tokens, **self.tokens}
        markets = {**registry.aave_markets, **self.aave_markets}
        vaults = {vault.symbol for vault in self.vaults}
        contracts = {**registry.contracts, **self.contracts}
        for index, holding in enumerate(self.holdings):
            at = f"holdings[{index}]"
            for label, names, known in (
                ("wallet", holding.wallet, {"ETH", *tokens}),
                ("aave", holding.aave, set(markets)),
                ("lido", holding.lido, set(tokens)),
                ("etherfi", holding.etherfi, set(tokens)),
                ("vaults", holding.vaults, vaults),
            ):
                unknown = sorted(set(names) - known)
                if unknown:
                    raise ValueError(f"{at}.{label}: unknown {', '.join(unknown)} on this chain")
            scans = holding.etherfi_scan_from_block is not None
            if (holding.etherfi_requests or scans) and "etherfi_withdrawals" not in contracts:
                raise ValueError(f"{at}.etherfi_requests: no contracts.etherfi_withdrawals")
            nfts = [nft.contract.lower() for nft in holding.etherfi_withdrawal_nfts]
            if holding.etherfi_requests or scans:
                nfts.append(contracts["etherfi_withdrawals"].lower())
            if len(set(nfts)) != len(nfts):
                raise ValueError(f"{at}.etherfi_withdrawal_nfts: a contract is listed twice")
            queues = [queue.contract.lower() for queue in holding.etherfi_priority_queues]
            if len(set(queues)) != len(queues):
                raise ValueError(f"{at}.etherfi_priority_queues: a contract is listed twice")
        unknown_markets = sorted(set(self.aave_oracles) - set(markets))
        if unknown_markets:
            raise ValueError(f"aave_oracles: unknown market {', '.join(unknown_markets)}")
        for index, feed in enumerate(self.feeds):
            known_feed = registry.feeds.get((feed.base, feed.quote))
            if known_feed is None and (feed.address is None or feed.heartbeat_seconds is None):
                raise ValueError(
                    f"feeds[{index}]: {feed.base}/{feed.quote} is not built in: "
                    "give address and heartbeat_seconds"
                )
        return self


VenueSettings = Annotated[
    DemoVenue | ManualVenue | ExchangeVenue | ChainVenue, Field(discriminator="kind")
]


class EdgeSettings(Section):
    """One conversion-graph edge: 1 `base` = rate `quote`, from `sources` in order, or `fixed`."""

    base: Symbol = Field(description="1 base = rate quote.")
    quote: Symbol = Field(description="The currency the rate is in.")
    sources: tuple[Name, ...] = Field(
        default=(),
        description=(
            "Names of this book's venues, `markets` or `price_sources`, most trusted first: all "
            "are asked, the first fresh answer is used, the others cross-check it."
        ),
    )
    fixed: Rate | None = Field(default=None, description="A fixed rate, instead of sources.")
    max_age_seconds: MaxAge = Field(
        default=300.0, description="A quote older than this is not used."
    )
    # what 1 base redeems for (1 for stETH/ETH): the market is compared with it (depeg metrics)
    peg: Rate | None = Field(
        default=None,
        description=(
            "What 1 base redeems for (1 for stETH/ETH): the market rate is compared with it (depeg"
            " metrics)."
        ),
    )
    # "peg" values the base at `peg` in equity instead of at its market price
    value_at: Literal["market", "peg"] = Field(
        default="market", description="Value the base at its market rate, or at `peg`."
    )

    @model_validator(mode="after")
    def _one_kind_of_source(self) -> EdgeSettings:
        if bool(self.sources) == (self.fixed is not None):
            raise ValueError("give either sources (venue names) or fixed (a rate), not both")
        if self.peg is not None and self.fixed is not None:
            raise ValueError("a peg is compared with market sources: give sources, not fixed")
        if self.value_at == "peg" and self.peg is None:
            raise ValueError('value_at = "peg" needs the peg (e.g. peg = 1)')
        return self


class WebhookSettings(Section):
    """An HTTP endpoint that receives every event as JSON, signed when `secret` is set."""

    name: Name = Field(
        description=(
            "The target's name, unique among webhooks and Apprise destinations; in logs, metrics "
            "and `outbox` commands."
        )
    )
    url: SecretStr = Field(
        description=(
            "The http(s) URL that receives each event as JSON (a secret: it may carry a token)."
        )
    )
    secret: SecretStr | None = Field(
        default=None, description="Signs each body: `X-Equity-Signature: sha256=<hex HMAC-SHA256>`."
    )
    timeout_seconds: Timeout = Field(default=10.0, description="Limit for one delivery.")
    max_backoff_seconds: Interval = Field(
        default=300.0, description="Retries wait from 1 s, doubling up to this."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: SecretStr) -> SecretStr:
        try:
            parsed = urlsplit(url.get_secret_value())
            host = parsed.hostname
        except ValueError:
            host = None
        if host is None or parsed.scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")  # never echo it: it is secret
        return url


class AppriseSettings(Section):
    """A place people read (Slack, Telegram, Discord, e-mail, PagerDuty, ntfy …), reached through
    Apprise: every event as a short plain message, from the same durable outbox as webhooks.

    `url` is one Apprise URL (`slack://…`, `tgram://…`, `mailtos://…`, `ntfy://…`): a secret,
    for it carries the service's token. Apprise cannot tell a refusal that will last (a revoked
    token) from an outage, so every failure counts: after `dead_letter_after_attempts` failed
    tries in a row (12 take 10 to 20 minutes with the default backoff) the event is
    dead-lettered and the destination moves on to the next one.
    """

    name: Name = Field(
        description=(
            "The target's name, unique among webhooks and Apprise destinations; in logs, metrics "
            "and `outbox` commands."
        )
    )
    url: SecretStr = Field(
        description=(
            "One Apprise URL (`slack://…`, `tgram://…`, `mailtos://…`, `ntfy://…`); it carries the"
            " service's token."
        )
    )
    timeout_seconds: Timeout = Field(default=10.0, description="Limit for one message.")
    max_backoff_seconds: Interval = Field(
        default=300.0, description="Retries wait from 1 s, doubling up to this."
    )
    dead_letter_after_attempts: int = Field(
        default=12,
        ge=1,
        le=1000,
        description=(
            "After this many failed tries in a row the event is a dead letter and the next one "
            "goes."
        ),
    )

    @field_validator("url")
    @classmethod
    def _apprise_url(cls, url: SecretStr) -> SecretStr:
        # imported here, not at the top: Apprise loads its plugins in some 0.4 s, and only a
        # configuration that names a destination should pay for it
        from equity_daemon.messenger import apprise_accepts

        if not apprise_accepts(url.get_secret_value()):
            # never echo it: it is secret
            raise ValueError("must be one Apprise URL of a service Apprise supports")
        return url


class PriceApiSettings(Section):
    """An HTTP price API, usable by any book's edges as a (fallback) source: prices in USD."""

    kind: Literal["defillama"] = Field(description="The API: DeFiLlama's coins API.")
    base_url: HttpUrl = Field(
        default=HttpUrl("https://coins.llama.fi"), description="The API's base URL."
    )
    coins: dict[Symbol, Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1,
        description=(
            "The API's coin id of each symbol it prices (`coingecko:ethereum`, `ethereum:0x…`); "
            "prices are in USD."
        ),
    )
    timeout_seconds: Timeout = Field(default=10.0, description="Limit for one request.")
    cache_seconds: float = Field(
        default=30.0,
        ge=0,
        le=DAY,
        allow_inf_nan=False,
        description="An answer is reused this long (a book's `quote_cache_seconds` caps it).",
    )
    min_confidence: Decimal = Field(
        default=Decimal("0.9"), ge=0, le=1, description="An answer of lower confidence is no quote."
    )


class MarketSettings(Section):
    """An exchange's public market data (tickers), read without a key: configured once, one
    ccxt instance shared by every book whose edges name it in `sources`.

    `sandbox`, `base_url` and `rate_limit` mean what they mean for an exchange venue; its REST
    requests share the exchange host's one rate limiter with every venue on that host. A price is
    reused for `cache_seconds` at most; with `stream`, the exchange's spot ticker stream gives
    each cycle the latest push, and REST reads a price older than that.
    """

    kind: Literal["binance", "bybit", "okx"] = Field(description="The exchange.")
    sandbox: bool = Field(default=False, description="Use the exchange's testnet.")
    base_url: AnyHttpUrl | None = Field(
        default=None,
        description=(
            "Send every request to this scheme and host, keeping the paths; no query, fragment or "
            "credentials."
        ),
    )
    rate_limit: bool = Field(
        default=True,
        description=(
            "ccxt's client-side throttle, one per exchange host; off only for a local test server."
        ),
    )
    timeout_seconds: Timeout = Field(default=10.0, description="Limit for one request.")
    cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=DAY,
        allow_inf_nan=False,
        description="A price is reused this long at most.",
    )
    stream: bool = Field(
        default=True,
        description=(
            "Follow the exchange's spot ticker stream; a price older than `cache_seconds` is read "
            "over REST."
        ),
    )

    @field_validator("base_url")
    @classmethod
    def _plain_base_url(cls, url: AnyHttpUrl | None) -> AnyHttpUrl | None:
        if problem := _base_url_problem(url):
            raise ValueError(problem)
        return url


class BookSettings(Section):
    """A strategy book: its share class, venues, prices, threshold rule and notifications."""

    share_class: ShareClass = Field(description="The currency equity is measured in.")
    venues: tuple[VenueSettings, ...] = Field(
        description="The book's venue accounts (at least one); a venue belongs to one book."
    )
    prices: tuple[EdgeSettings, ...] = Field(
        default=(), description="The conversion graph's edges."
    )
    threshold_percent: Decimal = Field(
        default=Decimal("0.1"),
        gt=0,
        le=100,
        description="Alert when equity moved this % from the last notified equity.",
    )
    threshold_floor: Annotated[Amount, Field(ge=0)] = Field(
        default=Decimal(0), description="… and by at least this much, in the share class."
    )
    venue_max_age_seconds: MaxAge = Field(
        default=300.0,
        description=(
            "Venue data older than this makes the snapshot incomplete (a venue's `max_age_seconds`"
            " overrides it)."
        ),
    )
    max_deviation_bps: Decimal = Field(
        default=Decimal(50),
        gt=0,
        le=10_000,
        description="Two sources further apart than this make a price suspect.",
    )
    # None: each source's own default; 0: ask every cycle
    quote_cache_seconds: float | None = Field(
        default=None,
        ge=0,
        le=DAY,
        allow_inf_nan=False,
        description=(
            "Cap on reusing a source's answer (0: ask every cycle); default: each source's own."
        ),
    )
    record_interval_seconds: Interval | None = Field(
        default=None,
        description=(
            "Record a snapshot at most this often, unless an event fires or completeness changes; "
            "default: `interval_seconds`."
        ),
    )
    ignore_assets: tuple[Symbol, ...] = Field(
        default=(),
        description=(
            "Symbols reported as `ignored`, with their amounts, and left out of equity (dust, "
            "airdrops)."
        ),
    )
    # how far (a ratio) an account may be from the total its venue reports before a warning
    reconciliation_tolerance: Decimal = Field(
        default=Decimal("0.005"),
        gt=0,
        le=1,
        description=(
            "An account further than this ratio from its venue's own total raises a "
            "`reconciliation` event."
        ),
    )
    webhooks: tuple[WebhookSettings, ...] = Field(
        default=(), description="HTTP endpoints that receive every event."
    )
    apprise: tuple[AppriseSettings, ...] = Field(
        default=(), description="Places people read that receive every event as a short message."
    )

    @property
    def outbox_targets(self) -> list[str]:
        """The names the outbox delivers this book's events to: webhooks, then Apprise."""
        return [hook.name for hook in self.webhooks] + [place.name for place in self.apprise]

    @field_validator("venues")
    @classmethod
    def _some_venue(cls, venues: tuple[VenueSettings, ...]) -> tuple[VenueSettings, ...]:
        # not Field(min_length=1): on a tuple, pydantic then reports one invalid venue twice,
        # the second time as "at least 1 item after validation, not 0"
        if not venues:
            raise ValueError("a book needs at least one venue")
        return venues

    @field_validator("ignore_assets")
    @classmethod
    def _each_asset_once(cls, assets: tuple[str, ...]) -> tuple[str, ...]:
        twice = sorted({asset for asset in assets if assets.count(asset) > 1})
        if twice:
            raise ValueError(f"lists {', '.join(twice)} more than once")
        return assets


class HttpSettings(Section):
    """The HTTP API. Binds loopback unless told otherwise."""

    host: str = Field(default="127.0.0.1", description="The address the HTTP API binds.")
    port: int = Field(default=9731, ge=0, le=65535, description="Its port (0: any free one).")
    bearer_token: SecretStr | None = Field(
        default=None,
        description="Guards `/`, `/snapshot`, `/events` and `/metrics`: visible ASCII, no spaces.",
    )
    # /metrics carries equity, assets and debt by venue and asset: with a token set, it asks
    # for it like /snapshot (Prometheus sends it with `authorization`), unless this is true
    open_metrics: bool = Field(
        default=False,
        description="`/metrics` answers without the token (a scraper that cannot send one).",
    )

    @field_validator("bearer_token")
    @classmethod
    def _usable_token(cls, token: SecretStr | None) -> SecretStr | None:
        # a token a client cannot send in an `Authorization` header would lock everyone out;
        # never echo it: it is secret
        if token is not None and not re.fullmatch(r"[!-~]+", token.get_secret_value()):
            raise ValueError(
                "must be one or more visible ASCII characters, no spaces (omit it for no token)"
            )
        return token


class Settings(BaseSettings, Section):
    """The whole daemon configuration."""

    model_config = SettingsConfigDict(
        env_prefix="EQUITY_DAEMON_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
    )

    books: dict[Name, BookSettings] = Field(min_length=1, description="The books, by name.")
    price_sources: dict[Name, PriceApiSettings] = Field(
        default={}, description="HTTP price APIs any book's edges may name as a source."
    )
    markets: dict[Name, MarketSettings] = Field(
        default={},
        description=(
            "Exchanges' public market data any book's edges may name as a source; one per exchange"
            " host."
        ),
    )
    http: HttpSettings = Field(default=HttpSettings(), description="The HTTP API.")
    interval_seconds: Interval = Field(
        default=60.0,
        description=(
            "Calculator period; it also runs at once on any venue change, at most once per "
            "`debounce_seconds`."
        ),
    )
    debounce_seconds: Annotated[Seconds, Field(le=MINUTE)] = Field(
        default=0.25, description="At most one change-driven cycle this often."
    )
    history_path: Path = Field(
        default=Path("equity-daemon.sqlite3"),
        description="The SQLite history (snapshots, events, references, outbox); must name a file.",
    )
    keep_all_days: float = Field(
        default=7.0,
        gt=0,
        le=3650,
        allow_inf_nan=False,
        description="Keep every snapshot this long, then one per hour.",
    )
    callback_timeout_seconds: Timeout = Field(
        default=5.0, description="Limit for each in-process callback."
    )
    stale_after_seconds: MaxAge | None = Field(
        default=None,
        description=(
            "An older snapshot raises `StaleEquity` and reads `stale`; default: 2 × "
            "`interval_seconds`."
        ),
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="The lowest level logged."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description=(
            "JSON lines, console lines for people, or `auto`: console on a terminal, else JSON."
        ),
    )

    @field_validator("history_path", mode="before")
    @classmethod
    def _names_a_file(cls, value: Any) -> Any:
        # "" reads as Path("."): accepted, it killed `run` at start ("has an empty name")
        text = str(value) if isinstance(value, str | Path) else None
        if text is not None and (
            not text.strip() or text.endswith("/") or Path(text).name in ("", ".", "..")
        ):
            raise ValueError('must name the database file (e.g. "equity-daemon.sqlite3")')
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init data; the environment is laid over it value by value,
        # into list items too (pydantic-settings' own source replaces a list by a table)
        return (EnvironmentOverFile(settings_cls, init_settings),)

    @model_validator(mode="after")
    def _names_are_unique_and_known(self) -> Settings:
        """Venue and outbox target names identify them in metrics, logs and the outbox."""
        # these problems span fields, so their messages carry the field path themselves;
        # webhooks and Apprise destinations are both outbox targets: one set of names
        targets: dict[str, tuple[str, str]] = {}
        for kind, section in (("venue", "venues"), ("webhook", "webhooks"), ("apprise", "apprise")):
            owners: dict[str, tuple[str, str]] = {} if kind == "venue" else targets
            for book_name, book in self.books.items():
                for index, item in enumerate(getattr(book, section)):
                    at = f"books.{book_name}.{section}[{index}].name"
                    if item.name not in owners:
                        owners[item.name] = (kind, book_name)
                        continue
                    owner_kind, owner_book = owners[item.name]
                    if owner_kind != kind:
                        raise ValueError(
                            f"{at}: {item.name!r} is already a {owner_kind} target of book "
                            f"{owner_book!r}; webhook and apprise names must differ"
                        )
                    raise ValueError(
                        f"{at}: {kind} {item.name!r} is already used in book {owner_book!r}; "
                        f"{kind} names must be unique"
                    )
        _one_market_per_host(self.markets)
        for name in self.markets.keys() & self.price_sources.keys():
            raise ValueError(f"markets.{name}: also a price_sources entry; names must differ")
        for book_name, book in self.books.items():
            for venue in book.venues:
                for section, entries in (
                    ("price_sources", self.price_sources),
                    ("markets", self.markets),
                ):
                    if venue.name in entries:
                        raise ValueError(
                            f"{section}.{venue.name}: the name of a venue of book "
                            f"{book_name!r}; {section} and venue names must differ"
                        )
            names = {venue.name for venue in book.venues} | set(self.price_sources)
            names |= set(self.markets)
            for index, edge in enumerate(book.prices):
                unknown = [s for s in edge.sources if s not in names]
                if unknown:
                    raise ValueError(
                        f"books.{book_name}.prices[{index}].sources: {edge.base}/{edge.quote} "
                        f"names unknown source(s) {', '.join(unknown)} (a venue of this book, "
                        "a markets entry or a price_sources entry)"
                    )
        return self

    @model_validator(mode="after")
    def _fresh_data_can_stay_fresh(self) -> Settings:
        """A quote cached, or a venue polled, no more often than its data may age would make the
        data stale between two refreshes: the snapshot would flap to incomplete."""
        for book_name, book in self.books.items():
            at = f"books.{book_name}"
            if book.quote_cache_seconds is not None:
                for index, edge in enumerate(book.prices):
                    if edge.sources:  # a fixed rate is never cached
                        _below(
                            (f"{at}.quote_cache_seconds", book.quote_cache_seconds),
                            (f"{at}.prices[{index}].max_age_seconds", edge.max_age_seconds),
                        )
            for index, edge in enumerate(book.prices):
                for name in edge.sources:
                    if name in self.markets:  # a streamed market reuses prices itself
                        _below(
                            (f"markets.{name}.cache_seconds", self.markets[name].cache_seconds),
                            (f"{at}.prices[{index}].max_age_seconds", edge.max_age_seconds),
                        )
            for index, venue in enumerate(book.venues):
                max_age = (f"{at}.venue_max_age_seconds", book.venue_max_age_seconds)
                if venue.max_age_seconds is not None:
                    max_age = (f"{at}.venues[{index}].max_age_seconds", venue.max_age_seconds)
                _below((f"{at}.venues[{index}].interval_seconds", venue.interval_seconds), max_age)
        return self


def _one_market_per_host(markets: dict[str, MarketSettings]) -> None:
    """Two entries for one exchange host would be two instances and two caches of one thing."""
    seen: dict[tuple[str, bool, str | None], str] = {}
    for name, market in markets.items():
        url = None if market.base_url is None else str(market.base_url).rstrip("/")
        host = (market.kind, market.sandbox, url)
        if host in seen:
            raise ValueError(
                f"markets.{name}: the same exchange as markets.{seen[host]}; "
                "configure each exchange's market data once"
            )
        seen[host] = name


def _below(field: tuple[str, float], limit: tuple[str, float]) -> None:
    """Raises a cross-field error naming `field` unless its value is below `limit`'s."""
    (name, value), (limit_name, limit_value) = field, limit
    if value >= limit_value:
        raise ValueError(
            f"{name}: {value:g} must be below {limit_name} ({limit_value:g}), "
            "or the data goes stale between two refreshes"
        )


def load_settings(path: Path | None) -> Settings:
    """Read the TOML file (if any) and the environment.

    Raises:
        ConfigError: with one line per problem, each naming its field path.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            # a byte-order mark (Windows editors add one) is no part of the TOML
            text = path.read_bytes().removeprefix(codecs.BOM_UTF8).decode()
            data = tomllib.loads(text, parse_float=Decimal)
        except FileNotFoundError:
            raise ConfigError([f"{path}: no such file"]) from None
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: invalid TOML: {exc}"]) from None
        except UnicodeDecodeError:  # tomllib decodes before parsing; UTF-16 from Windows editors
            raise ConfigError([f"{path}: not UTF-8 text (save it as UTF-8)"]) from None
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc)) from None
    except SettingsError as exc:  # an EQUITY_DAEMON_* variable holding malformed JSON
        raise ConfigError([f"environment: {exc}"]) from None
