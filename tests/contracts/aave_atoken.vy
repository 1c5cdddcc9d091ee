# pragma version ~=0.4.3
"""
@title Aave v3 aToken for tests
@notice Mainnet reads: `balanceOf(address)` = scaled balance × the pool's normalized income
    / RAY (rounded down, as since v3.5), `scaledBalanceOf(address)`, `scaledTotalSupply()`,
    `getScaledUserBalanceAndSupply(address)`, `totalSupply()`, `UNDERLYING_ASSET_ADDRESS()`,
    `POOL()`, `decimals()`, `symbol()`, `name()`. `mint_scaled` credits a scaled balance.
"""

interface Pool:
    def getReserveNormalizedIncome(asset: address) -> uint256: view

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

RAY: constant(uint256) = 10**27

POOL: public(immutable(address))
UNDERLYING_ASSET_ADDRESS: public(immutable(address))
name: public(String[64])
symbol: public(String[32])
decimals: public(uint8)
scaledTotalSupply: public(uint256)
scaled: HashMap[address, uint256]


@deploy
def __init__(pool: address, underlying: address, name_: String[64], symbol_: String[32], decimals_: uint8):
    POOL = pool
    UNDERLYING_ASSET_ADDRESS = underlying
    self.name = name_
    self.symbol = symbol_
    self.decimals = decimals_


@view
@internal
def _index() -> uint256:
    return staticcall Pool(POOL).getReserveNormalizedIncome(UNDERLYING_ASSET_ADDRESS)


@view
@external
def balanceOf(user: address) -> uint256:
    return self.scaled[user] * self._index() // RAY


@view
@external
def totalSupply() -> uint256:
    return self.scaledTotalSupply * self._index() // RAY


@view
@external
def scaledBalanceOf(user: address) -> uint256:
    return self.scaled[user]


@view
@external
def getScaledUserBalanceAndSupply(user: address) -> (uint256, uint256):
    return self.scaled[user], self.scaledTotalSupply


@external
def mint_scaled(user: address, scaled_amount: uint256):
    """@notice Test helper: add `scaled_amount` to `user`'s scaled balance."""
    self.scaled[user] += scaled_amount
    self.scaledTotalSupply += scaled_amount
    log Transfer(sender=empty(address), receiver=user, value=scaled_amount * self._index() // RAY)
