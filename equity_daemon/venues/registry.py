"""Built-in contract addresses of the chains the daemon knows, by chain id.

Pure data. A chain venue starts from its chain's entry (none for a chain not listed here) and
its configuration overrides any of it: `tokens`, `aave_markets`, `contracts`, `feeds`. Another
chain is added by configuration alone.

Sources: venue-facts.md section 2 and venue-pitfalls.md points 39 and 45 (the bgd-labs Aave
address book, Lido, EtherFi and Chainlink deployments on Ethereum mainnet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

MULTICALL3: Final = "0xcA11bde05977b3631167028862bE2a173976CA11"


@dataclass(frozen=True, slots=True)
class KnownFeed:
    """A Chainlink aggregator: 1 `base` = answer `quote`, updated at least every `heartbeat`."""

    address: str
    heartbeat_seconds: float


@dataclass(frozen=True, slots=True)
class ChainRegistry:
    """What is deployed on one chain, by the names configuration uses."""

    multicall: str = MULTICALL3
    tokens: dict[str, str] = field(default_factory=dict)  # ERC-20 contracts by symbol
    aave_markets: dict[str, str] = field(default_factory=dict)  # Aave v3 Pool by market name
    contracts: dict[str, str] = field(default_factory=dict)  # anything else, by role
    feeds: dict[tuple[str, str], KnownFeed] = field(default_factory=dict)


ETHEREUM: Final = ChainRegistry(
    tokens={
        "USDT": "0xdAC17F958D2ee523a2206206994597C13D831ec7",
        "WETH": "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
        "stETH": "0xae7ab96520DE3A18E5e111B5EaAb095312D7fE84",
        "wstETH": "0x7f39C581F595B53c5cb19bD0b3f8dA6c935E2Ca0",
        "eETH": "0x35fA164735182de50811E8e2E824cFb9B6118ac2",
        "weETH": "0xCd5fE23C85820F7B72D0926FC9b05b43E359b7ee",
    },
    aave_markets={
        "core": "0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2",
        "prime": "0x4e033931ad43597d96D6bcc25c280717730B58B1",
        "etherfi": "0x0AA97c284e98396202b6A04024F5E2c65026F3c0",
    },
    contracts={
        "etherfi_withdrawals": "0x7d5706f6ef3F89B3951E23e557CDFBC3239D4E2c",
    },
    feeds={
        ("ETH", "USD"): KnownFeed("0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419", 3600),
        ("stETH", "ETH"): KnownFeed("0x86392dC19c0b719886221c78AB11eb8Cf5c52812", 86_400),
    },
)

KNOWN: Final = {1: ETHEREUM}


def registry_for(chain_id: int) -> ChainRegistry:
    """The built-in addresses of `chain_id`; an empty registry for a chain not listed."""
    return KNOWN.get(chain_id, ChainRegistry())
