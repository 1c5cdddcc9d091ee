# pragma version ~=0.4.3
"""
@title Chainlink AggregatorV3 for tests
@notice Mainnet reads: `latestRoundData()` returning `(uint80 roundId, int256 answer,
    uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)`, `decimals()`,
    `description()`, `version()`, `latestAnswer()`, `latestTimestamp()`, `latestRound()`.
    `set_answer` starts a new round with the given answer and update time.
"""

decimals: public(uint8)
description: public(String[64])
version: public(uint256)

round_id: uint80
answer: int256
started_at: uint256
updated_at: uint256


@deploy
def __init__(decimals_: uint8, description_: String[64]):
    self.decimals = decimals_
    self.description = description_
    self.version = 4


@view
@external
def latestRoundData() -> (uint80, int256, uint256, uint256, uint80):
    return self.round_id, self.answer, self.started_at, self.updated_at, self.round_id


@view
@external
def latestAnswer() -> int256:
    return self.answer


@view
@external
def latestTimestamp() -> uint256:
    return self.updated_at


@view
@external
def latestRound() -> uint256:
    return convert(self.round_id, uint256)


@external
def set_answer(answer: int256, updated_at: uint256):
    """@notice Test helper: a new round answering `answer`, updated at `updated_at`."""
    self.round_id += 1
    self.answer = answer
    self.started_at = updated_at
    self.updated_at = updated_at
