# pragma version ~=0.4.3
"""
@title EtherFi PriorityWithdrawalQueue subset for tests
@notice Mainnet functions, same selectors and encodings: `requestWithdraw(uint96 amountOfEEth,
    uint96 amountWithFee)` returning the request id, `keccak256(abi.encode(request))` of the
    `WithdrawRequest(address user, uint96 amountOfEEth, uint96 shareOfEEth,
    uint96 amountWithFee, uint32 nonce, uint32 creationTime)` struct; `requestExists(bytes32)`,
    `isFinalized(bytes32)`, `nonce()`, `getRequestId(WithdrawRequest)`,
    `fulfillRequests(WithdrawRequest[])`, `claimWithdraw(WithdrawRequest)`,
    `cancelWithdraw(WithdrawRequest)`. Event: `WithdrawRequestCreated(bytes32 indexed requestId,
    address indexed user, uint96 amountOfEEth, uint96 shareOfEEth, uint96 amountWithFee,
    uint32 nonce, uint32 creationTime)`.

    No guards (whitelist, roles, delay) and no tokens move: a request is created, finalized,
    claimed or cancelled in the sets only. One share is one eETH.
"""

struct WithdrawRequest:
    user: address
    amountOfEEth: uint96
    shareOfEEth: uint96
    amountWithFee: uint96
    nonce: uint32
    creationTime: uint32

event WithdrawRequestCreated:
    requestId: indexed(bytes32)
    user: indexed(address)
    amountOfEEth: uint96
    shareOfEEth: uint96
    amountWithFee: uint96
    nonce: uint32
    creationTime: uint32

MAX_BATCH: constant(uint256) = 64

nonce: public(uint32)
pending: HashMap[bytes32, bool]
finalized: HashMap[bytes32, bool]


@deploy
def __init__():
    self.nonce = 1


@pure
@internal
def _id(request: WithdrawRequest) -> bytes32:
    return keccak256(abi_encode(request))


@pure
@external
def getRequestId(request: WithdrawRequest) -> bytes32:
    return self._id(request)


@view
@external
def requestExists(requestId: bytes32) -> bool:
    return self.pending[requestId] or self.finalized[requestId]


@view
@external
def isFinalized(requestId: bytes32) -> bool:
    return self.finalized[requestId]


@external
def requestWithdraw(amountOfEEth: uint96, amountWithFee: uint96) -> bytes32:
    assert amountWithFee != 0 and amountWithFee <= amountOfEEth, "InvalidAmount"
    request: WithdrawRequest = WithdrawRequest(
        user=msg.sender,
        amountOfEEth=amountOfEEth,
        shareOfEEth=amountOfEEth,
        amountWithFee=amountWithFee,
        nonce=self.nonce,
        creationTime=convert(block.timestamp, uint32),
    )
    self.nonce += 1
    request_id: bytes32 = self._id(request)
    self.pending[request_id] = True
    log WithdrawRequestCreated(
        requestId=request_id,
        user=request.user,
        amountOfEEth=request.amountOfEEth,
        shareOfEEth=request.shareOfEEth,
        amountWithFee=request.amountWithFee,
        nonce=request.nonce,
        creationTime=request.creationTime,
    )
    return request_id


@external
def fulfillRequests(requests: DynArray[WithdrawRequest, MAX_BATCH]):
    for request: WithdrawRequest in requests:
        request_id: bytes32 = self._id(request)
        assert not self.finalized[request_id], "RequestAlreadyFinalized"
        assert self.pending[request_id], "RequestNotFound"
        self.pending[request_id] = False
        self.finalized[request_id] = True


@external
def claimWithdraw(request: WithdrawRequest):
    request_id: bytes32 = self._id(request)
    assert self.finalized[request_id], "RequestNotFinalized"
    self.finalized[request_id] = False


@external
def cancelWithdraw(request: WithdrawRequest) -> bytes32:
    assert request.user == msg.sender, "NotRequestOwner"
    request_id: bytes32 = self._id(request)
    assert self.pending[request_id] or self.finalized[request_id], "RequestNotFound"
    self.pending[request_id] = False
    self.finalized[request_id] = False
    return request_id
