# pragma version ~=0.4.3
"""
@title Multicall3 for tests
@notice The mainnet Multicall3 functions the daemon reads with, same selectors and encodings:
    `aggregate3((address,bool,bytes)[]) payable returns ((bool,bytes)[])` and the block getters.
    Vyper needs bounds where Solidity has none: at most 1,024 calls of at most 256 bytes of
    calldata each, and each answer is cut to its first 1,024 bytes (enough for every read the
    daemon makes; a 1,000-position book fits one call, as on mainnet).
"""

MAX_CALLS: constant(uint256) = 1024
MAX_CALLDATA: constant(uint256) = 256
MAX_RETURN: constant(uint256) = 1024


struct Call3:
    target: address
    allowFailure: bool
    callData: Bytes[MAX_CALLDATA]


struct Result:
    success: bool
    returnData: Bytes[MAX_RETURN]


@payable
@external
def aggregate3(calls: DynArray[Call3, MAX_CALLS]) -> DynArray[Result, MAX_CALLS]:
    results: DynArray[Result, MAX_CALLS] = []
    for call: Call3 in calls:
        success: bool = False
        data: Bytes[MAX_RETURN] = b""
        success, data = raw_call(
            call.target, call.callData, max_outsize=MAX_RETURN, revert_on_failure=False
        )
        assert success or call.allowFailure, "Multicall3: call failed"
        results.append(Result(success=success, returnData=data))
    return results


@view
@external
def getBlockNumber() -> uint256:
    return block.number


@view
@external
def getBlockHash(blockNumber: uint256) -> bytes32:
    return blockhash(blockNumber)


@view
@external
def getLastBlockHash() -> bytes32:
    return block.prevhash


@view
@external
def getCurrentBlockTimestamp() -> uint256:
    return block.timestamp


@view
@external
def getCurrentBlockGasLimit() -> uint256:
    return block.gaslimit


@view
@external
def getCurrentBlockCoinbase() -> address:
    return block.coinbase


@view
@external
def getBasefee() -> uint256:
    return block.basefee


@view
@external
def getChainId() -> uint256:
    return chain.id


@view
@external
def getEthBalance(addr: address) -> uint256:
    return addr.balance
