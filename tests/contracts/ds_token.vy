# pragma version ~=0.4.3
"""
@title DSToken subset for tests (Maker's MKR and other early tokens)
@notice Mainnet reads, same selectors and encodings: `symbol()` and `name()` answer `bytes32`
    (text padded with zeros, not an ABI string), `decimals()` a `uint256`, `balanceOf(address)`,
    `totalSupply()`. `mint` is a test helper.
"""

event Transfer:
    src: indexed(address)
    dst: indexed(address)
    wad: uint256

name: public(bytes32)
symbol: public(bytes32)
decimals: public(uint256)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])


@deploy
def __init__(symbol_: bytes32):
    self.symbol = symbol_
    self.name = symbol_
    self.decimals = 18


@external
def mint(receiver: address, amount: uint256):
    """@notice Test helper: credit `amount` to `receiver`."""
    self.balanceOf[receiver] += amount
    self.totalSupply += amount
    log Transfer(src=empty(address), dst=receiver, wad=amount)
