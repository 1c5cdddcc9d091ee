# pragma version ~=0.4.3
"""
@title ERC-4626 vault subset for tests
@notice Mainnet reads: `asset()`, `totalAssets()`, `convertToAssets(uint256)`,
    `convertToShares(uint256)` and the ERC-20 reads of its shares. The assets it holds are set
    by `set_total_assets`, not deposited.
"""

import erc20

initializes: erc20
exports: erc20.__interface__

asset: public(immutable(address))
totalAssets: public(uint256)


@deploy
def __init__(asset_: address, name_: String[64], symbol_: String[32], decimals_: uint8):
    erc20.__init__(name_, symbol_, decimals_)
    asset = asset_


@view
@external
def convertToAssets(shares: uint256) -> uint256:
    if erc20.totalSupply == 0:
        return shares
    return shares * self.totalAssets // erc20.totalSupply


@view
@external
def convertToShares(assets: uint256) -> uint256:
    if self.totalAssets == 0:
        return assets
    return assets * erc20.totalSupply // self.totalAssets


@external
def set_total_assets(amount: uint256):
    """@notice Test helper: the assets the vault holds for all its shares."""
    self.totalAssets = amount
