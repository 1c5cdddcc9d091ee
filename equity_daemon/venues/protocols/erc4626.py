"""ERC-4626 vaults: share balances (account `erc4626:0x…`) and the share → asset rate.

The rate is `convertToAssets(one share) / one asset`, read each cycle in the same multicall;
the vault's asset and both decimals are found at discovery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from equity_daemon.venues.multicall import Call, CallResult
from equity_daemon.venues.protocols import Readout, Run, Token, need, units


@dataclass(frozen=True, slots=True)
class Vault:
    """A vault's shares (`share`, an ERC-20) and its asset's symbol and decimals."""

    share: Token
    asset: str
    asset_decimals: int


async def discover_vaults(run: Run, vaults: Sequence[tuple[Token, str]]) -> list[Vault]:
    """Each vault's asset decimals (`asset()`, then its `decimals()`)."""
    assets = await run([Call.of(t.address, "asset()", returns=("address",)) for t, _ in vaults])
    addresses = [
        str(need(r, f"vault {t.symbol}")) for (t, _), r in zip(vaults, assets, strict=True)
    ]
    decimals = await run(
        [Call.of(a, "decimals()", returns=("uint8",), label="asset.decimals") for a in addresses]
    )
    return [
        Vault(token, asset, int(need(result, f"vault {token.symbol} asset {asset}")))
        for (token, asset), result in zip(vaults, decimals, strict=True)
    ]


@dataclass(frozen=True, slots=True)
class VaultRate:
    """1 share of `vault` = `convertToAssets(10**share decimals)` of its asset."""

    vault: Vault

    def calls(self) -> Sequence[Call]:
        share = self.vault.share
        one = 10**share.decimals
        label = f"{share.symbol}.convertToAssets"
        return [
            Call.of(
                share.address, "convertToAssets(uint256)", one, returns=("uint256",), label=label
            )
        ]

    def read(self, results: Sequence[CallResult], out: Readout) -> None:
        (result,) = results
        pair = (self.vault.share.symbol, self.vault.asset)
        raw = int(need(result, f"rate {pair[0]}/{pair[1]}"))
        out.rates[pair] = units(raw, self.vault.asset_decimals)
