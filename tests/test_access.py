"""Who may read: the bearer token, and the session cookie opened with it."""

from __future__ import annotations

from equity_daemon.access import SESSION_SECONDS, Access


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_without_a_token_everyone_may_read() -> None:
    access = Access(None)
    assert access.open
    assert access.allows(None, None)
    assert access.token_matches("anything")
    assert not access.session_valid(access.new_session())  # no sessions to speak of


def test_the_bearer_scheme_in_any_case_and_the_token_exact() -> None:
    access = Access("s3cret")
    assert not access.open
    for accepted in ("Bearer s3cret", "bearer s3cret", "BEARER   s3cret"):
        assert access.allows(accepted, None), accepted
    for refused in (None, "", "Bearer S3CRET", "Bearer s3cre", "Basic s3cret", "s3cret"):
        assert not access.allows(refused, None), refused


def test_a_session_holds_no_token_and_expires() -> None:
    clock = Clock()
    access = Access("s3cret", clock)
    session = access.new_session()
    assert "s3cret" not in session
    assert access.allows(None, session)
    clock.now += SESSION_SECONDS - 1
    assert access.session_valid(session)
    clock.now += 1
    assert not access.session_valid(session)


def test_a_session_is_worthless_once_forged_or_the_token_changes() -> None:
    clock = Clock()
    session = Access("s3cret", clock).new_session()
    assert not Access("rotated", clock).session_valid(session)
    expires, _, signature = session.partition(".")
    later = str(int(expires) + 3600)
    flipped = signature[:-1] + ("1" if signature.endswith("0") else "0")
    for forged in (f"{later}.{signature}", f"{expires}.{flipped}", "", "x.y", "s3cret"):
        assert not Access("s3cret", clock).session_valid(forged), forged
