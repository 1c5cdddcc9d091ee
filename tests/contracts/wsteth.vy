# pragma version ~=0.4.3
"""
@title Lido wstETH for tests
@notice Mainnet reads: `stEthPerToken()`, `tokensPerStEth()`, `getStETHByWstETH(uint256)`,
    `getWstETHByStETH(uint256)` and the ERC-20 reads. The rate is set by `set_st_eth_per_token`
    instead of following stETH's pooled ether.
"""

import erc20

initializes: erc20
exports: erc20.__interface__

ONE: constant(uint256) = 10**18

stEthPerToken: public(uint256)


@deploy
def __init__(st_eth_per_token: uint256):
    erc20.__init__("Wrapped liquid staked Ether 2.0", "wstETH", 18)
    self.stEthPerToken = st_eth_per_token


@view
@external
def tokensPerStEth() -> uint256:
    return ONE * ONE // self.stEthPerToken


@view
@external
def getStETHByWstETH(wst_eth_amount: uint256) -> uint256:
    return wst_eth_amount * self.stEthPerToken // ONE


@view
@external
def getWstETHByStETH(st_eth_amount: uint256) -> uint256:
    return st_eth_amount * ONE // self.stEthPerToken


@external
def set_st_eth_per_token(rate: uint256):
    """@notice Test helper: stETH for one wstETH, 1e18 scale."""
    self.stEthPerToken = rate
