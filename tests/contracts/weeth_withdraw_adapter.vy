# pragma version ~=0.4.3
"""
@title EtherFi WeETHWithdrawAdapter subset for tests
@notice Mainnet functions, same selectors and encodings: `requestWithdraw(uint256 weETHAmount,
    address recipient)` returning the request id, and `getEETHByWeETH(uint256)`. As on mainnet
    the request NFT is minted to `recipient` by the WithdrawRequestNFT itself (here called
    directly, on mainnet through the liquidity pool); no weETH is moved.
"""

interface WeETH:
    def getEETHByWeETH(weETHAmount: uint256) -> uint256: view

interface WithdrawRequestNFT:
    def requestWithdraw(amountOfEEth: uint96, shareOfEEth: uint96, recipient: address) -> uint256: nonpayable

weETH: public(immutable(address))
withdrawRequestNFT: public(immutable(address))


@deploy
def __init__(weeth: address, nft: address):
    weETH = weeth
    withdrawRequestNFT = nft


@view
@external
def getEETHByWeETH(weETHAmount: uint256) -> uint256:
    return staticcall WeETH(weETH).getEETHByWeETH(weETHAmount)


@external
def requestWithdraw(weETHAmount: uint256, recipient: address) -> uint256:
    amount: uint256 = staticcall WeETH(weETH).getEETHByWeETH(weETHAmount)
    return extcall WithdrawRequestNFT(withdrawRequestNFT).requestWithdraw(
        convert(amount, uint96), convert(weETHAmount, uint96), recipient
    )
