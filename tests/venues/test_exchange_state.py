"""The rule that keeps an exchange venue's REST answers and pushes in step: an account is the
answer asked for last, with every push heard since that request went out applied on top."""

from __future__ import annotations

from equity_daemon.venues.exchange_state import (
    AccountAnswer,
    ExchangeState,
    Heard,
    Read,
    Snapshot,
)


def answer(amount: str) -> AccountAnswer:
    return AccountAnswer({"USDT": amount}, None)


def push(at: float, account: str = "usdm", amount: str = "2000") -> Heard:
    return Heard(account, "balance", {"USDT": amount}, at)


def written(state: ExchangeState, read: Read, found: Snapshot) -> list[Heard]:
    """What `read` found, written and the read closed; the pushes to apply again."""
    replay = state.write(state.newer(found.accounts, read), found.transfers, read)
    state.close(read)
    return replay


def test_a_push_heard_while_a_read_is_out_is_handed_back_when_its_answer_is_written() -> None:
    state = ExchangeState()
    read = state.open(10.0)
    heard_before, heard_during = push(9.0, amount="1500"), push(11.0)
    for heard in (heard_before, heard_during):
        state.journal(heard)  # applied as they came
    replay = written(state, read, Snapshot({"usdm": answer("1000")}, None))
    assert replay == [heard_during]  # the answer holds the earlier one already
    assert state.accounts["usdm"].info == {"USDT": "1000"}
    assert state.covered(heard_before)
    assert not state.covered(heard_during)
    state.journal(push(12.0))  # no read out: nothing is kept for one
    assert written(state, state.open(13.0), Snapshot({"usdm": answer("2000")}, None)) == []


def test_an_answer_asked_for_before_the_one_an_account_holds_never_writes_over_it() -> None:
    state = ExchangeState()
    late = state.open(10.0)  # a read that will finish late
    assert written(state, state.open(20.0), Snapshot({"usdm": answer("1500")}, None)) == []
    state.journal(push(25.0))
    found = Snapshot({"usdm": answer("1000"), "spot": answer("7")}, None)
    assert written(state, late, found) == []
    assert state.accounts["usdm"].info == {"USDT": "1500"}  # not back in time
    assert state.accounts["spot"].info == {"USDT": "7"}  # no later read wrote it


def test_a_cued_account_is_due_until_an_answer_asked_for_after_its_last_push_is_written() -> None:
    state = ExchangeState()
    written(state, state.open(1.0), Snapshot({"margin": answer("13000")}, None))
    assert state.due() == []
    state.cue(push(5.0, "margin"))
    assert state.due() == ["margin"]
    read = state.open(6.0)
    state.cue(push(7.0, "margin"))  # heard while the read is out: it may not hold it
    written(state, read, Snapshot({"margin": answer("16000")}, None))
    assert state.due() == ["margin"]
    written(state, state.open(8.0), Snapshot({"margin": answer("16000")}, None))
    assert state.due() == []
