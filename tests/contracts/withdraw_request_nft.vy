# pragma version ~=0.4.3
"""
@title EtherFi WithdrawRequestNFT subset for tests
@notice Mainnet reads, same selectors and encodings: `getRequest(uint256)` returning
    `(uint96 amountOfEEth, uint96 shareOfEEth, bool isValid, uint32 feeGwei)`,
    `isFinalized(uint256)`, `isValid(uint256)` (reverts for an unknown id),
    `getClaimableAmount(uint256)` (reverts until finalized and once claimed), `ownerOf(uint256)`
    (reverts for an unknown or burned id), `balanceOf(address)`, `nextRequestId()`,
    `lastFinalizedRequestId()`. Events: the ERC-721 `Transfer` on mint and burn, the current
    `WithdrawRequestCreated(uint32 indexed requestId, uint256 amountOfEEth,
    uint256 shareOfEEth, address owner)` (no `fee` since June 2026) and
    `WithdrawRequestInvalidated(uint32 indexed requestId)`.

    The state-changing functions keep their mainnet names but not their guards: anyone may
    `requestWithdraw` (the liquidity pool on mainnet), `finalizeRequests` (the admin) and
    `invalidateRequest` (the guardian); `claimWithdraw` burns the NFT and deletes the request
    but moves no ether. A finalized request pays `min(amountOfEEth, shareOfEEth × rate / 1e18)`
    at the rate frozen when it was finalized (`set_amount_per_share` sets the live rate).
"""

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    tokenId: indexed(uint256)

event WithdrawRequestCreated:
    requestId: indexed(uint32)
    amountOfEEth: uint256
    shareOfEEth: uint256
    owner: address

event WithdrawRequestInvalidated:
    requestId: indexed(uint32)


struct WithdrawRequest:
    amountOfEEth: uint96
    shareOfEEth: uint96
    isValid: bool
    feeGwei: uint32


SHARE_UNIT: constant(uint256) = 10**18
MAX_FINALIZED_PER_CALL: constant(uint256) = 256

name: public(String[32])
symbol: public(String[32])
nextRequestId: public(uint32)
lastFinalizedRequestId: public(uint32)

amount_per_share: uint256
requests: HashMap[uint256, WithdrawRequest]
owners: HashMap[uint256, address]
balances: HashMap[address, uint256]
frozen_rate: HashMap[uint256, uint256]


@deploy
def __init__():
    self.name = "Withdraw Request NFT"
    self.symbol = "WithdrawRequestNFT"
    self.nextRequestId = 1
    self.amount_per_share = SHARE_UNIT


@view
@external
def getRequest(requestId: uint256) -> WithdrawRequest:
    return self.requests[requestId]


@view
@external
def isFinalized(requestId: uint256) -> bool:
    return requestId <= convert(self.lastFinalizedRequestId, uint256)


@view
@external
def isValid(requestId: uint256) -> bool:
    assert self.owners[requestId] != empty(address), "RequestNotFound"
    return self.requests[requestId].isValid


@view
@external
def getClaimableAmount(tokenId: uint256) -> uint256:
    assert tokenId <= convert(self.lastFinalizedRequestId, uint256), "RequestNotFinalized"
    assert self.owners[tokenId] != empty(address), "ERC721: invalid token ID"
    request: WithdrawRequest = self.requests[tokenId]
    for_shares: uint256 = convert(request.shareOfEEth, uint256) * self.frozen_rate[tokenId] // SHARE_UNIT
    return min(convert(request.amountOfEEth, uint256), for_shares)


@view
@external
def ownerOf(tokenId: uint256) -> address:
    owner: address = self.owners[tokenId]
    assert owner != empty(address), "ERC721: invalid token ID"
    return owner


@view
@external
def balanceOf(owner: address) -> uint256:
    assert owner != empty(address), "ERC721: address zero is not a valid owner"
    return self.balances[owner]


@external
def requestWithdraw(amountOfEEth: uint96, shareOfEEth: uint96, recipient: address) -> uint256:
    request_id: uint32 = self.nextRequestId
    self.nextRequestId = request_id + 1
    token_id: uint256 = convert(request_id, uint256)
    self.requests[token_id] = WithdrawRequest(
        amountOfEEth=amountOfEEth, shareOfEEth=shareOfEEth, isValid=True, feeGwei=0
    )
    self.owners[token_id] = recipient
    self.balances[recipient] += 1
    log Transfer(sender=empty(address), receiver=recipient, tokenId=token_id)
    log WithdrawRequestCreated(
        requestId=request_id,
        amountOfEEth=convert(amountOfEEth, uint256),
        shareOfEEth=convert(shareOfEEth, uint256),
        owner=recipient,
    )
    return token_id


@external
def finalizeRequests(requestId: uint256):
    last: uint256 = convert(self.lastFinalizedRequestId, uint256)
    assert requestId >= last, "CannotUndoFinalization"
    assert requestId < convert(self.nextRequestId, uint256), "CannotFinalizeFutureRequests"
    for token_id: uint256 in range(last + 1, requestId + 1, bound=MAX_FINALIZED_PER_CALL):
        self.frozen_rate[token_id] = self.amount_per_share
    self.lastFinalizedRequestId = convert(requestId, uint32)


@external
def invalidateRequest(requestId: uint256):
    assert requestId > convert(self.lastFinalizedRequestId, uint256), "CannotInvalidateFinalizedRequest"
    assert self.owners[requestId] != empty(address), "RequestNotFound"
    assert self.requests[requestId].isValid, "RequestNotValid"
    self.requests[requestId].isValid = False
    log WithdrawRequestInvalidated(requestId=convert(requestId, uint32))


@external
def claimWithdraw(tokenId: uint256):
    owner: address = self.owners[tokenId]
    assert owner != empty(address), "ERC721: invalid token ID"
    assert owner == msg.sender, "NotTheOwner"
    assert self.requests[tokenId].isValid, "RequestNotValid"
    assert tokenId <= convert(self.lastFinalizedRequestId, uint256), "RequestNotFinalized"
    self.owners[tokenId] = empty(address)
    self.balances[owner] -= 1
    self.requests[tokenId] = empty(WithdrawRequest)
    log Transfer(sender=owner, receiver=empty(address), tokenId=tokenId)


@external
def set_amount_per_share(rate: uint256):
    """@notice Test helper: the live eETH per share (1e18 scale) that finalizing freezes."""
    self.amount_per_share = rate
