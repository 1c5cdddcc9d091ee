# pragma version ~=0.4.3
"""
@title EtherFi weETH for tests
@notice Mainnet reads: `getRate()` (eETH per weETH, 1e18 scale), `getEETHByWeETH(uint256)`,
    `getWeETHByeETH(uint256)` and the ERC-20 reads. The rate is set by `set_rate` instead of
    following the liquidity pool.
"""

import erc20

initializes: erc20
exports: erc20.__interface__

ONE: constant(uint256) = 10**18

rate: uint256


@deploy
def __init__(rate: uint256):
    erc20.__init__("Wrapped eETH", "weETH", 18)
    self.rate = rate


@view
@external
def getRate() -> uint256:
    return self.rate


@view
@external
def getEETHByWeETH(we_eth_amount: uint256) -> uint256:
    return we_eth_amount * self.rate // ONE


@view
@external
def getWeETHByeETH(e_eth_amount: uint256) -> uint256:
    return e_eth_amount * ONE // self.rate


@external
def set_rate(rate: uint256):
    """@notice Test helper: eETH for one weETH, 1e18 scale."""
    self.rate = rate
