# pragma version ~=0.4.3
"""
@title AaveOracle subset for tests
@notice Mainnet reads, same selectors and encodings: `getAssetsPrices(address[])` (uint256[],
    in the base currency's units: USD with 8 decimals on Ethereum), `getAssetPrice(address)`
    and `BASE_CURRENCY_UNIT()`. Prices are set by a test helper.
"""

MAX_ASSETS: constant(uint256) = 128

prices: HashMap[address, uint256]


@view
@external
def getAssetsPrices(assets: DynArray[address, MAX_ASSETS]) -> DynArray[uint256, MAX_ASSETS]:
    out: DynArray[uint256, MAX_ASSETS] = []
    for asset: address in assets:
        out.append(self.prices[asset])
    return out


@view
@external
def getAssetPrice(asset: address) -> uint256:
    return self.prices[asset]


@view
@external
def BASE_CURRENCY_UNIT() -> uint256:
    return 10**8


@external
def set_asset_price(asset: address, price: uint256):
    """@notice Test helper: `asset`'s price in base currency units (8 decimals)."""
    self.prices[asset] = price
