# pragma version ~=0.4.3
"""
@title Aave v3 PoolAddressesProvider subset for tests
@notice Mainnet read, same selector and encoding: `getPriceOracle()` (the market's AaveOracle).
"""

price_oracle: address


@deploy
def __init__(price_oracle: address):
    self.price_oracle = price_oracle


@view
@external
def getPriceOracle() -> address:
    return self.price_oracle
