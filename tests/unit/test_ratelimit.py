"""The failed-attempt counter both servers use to answer token guessing with 429."""

from __future__ import annotations

import pytest

from workdock.ratelimit import LIMIT_ENV, WINDOW_ENV, FailedAttempts, RateLimitSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_blocks_after_the_limit_within_the_window_then_lets_go() -> None:
    clock = Clock()
    attempts = FailedAttempts(RateLimitSettings(limit=3, window=60), clock=clock)
    for _ in range(2):
        attempts.record_failure("10.0.0.1")
        assert attempts.retry_after("10.0.0.1") is None
    attempts.record_failure("10.0.0.1")
    assert attempts.retry_after("10.0.0.1") == 60
    assert attempts.retry_after("10.0.0.2") is None  # per address
    clock.now += 59.5
    assert attempts.retry_after("10.0.0.1") == 1
    clock.now += 0.5
    assert attempts.retry_after("10.0.0.1") is None


def test_failures_older_than_the_window_do_not_count() -> None:
    clock = Clock()
    attempts = FailedAttempts(RateLimitSettings(limit=2, window=10), clock=clock)
    attempts.record_failure("a")
    clock.now += 11
    attempts.record_failure("a")
    assert attempts.retry_after("a") is None


def test_zero_turns_it_off() -> None:
    attempts = FailedAttempts(RateLimitSettings(limit=0))
    for _ in range(100):
        attempts.record_failure("a")
    assert attempts.retry_after("a") is None


def test_settings_from_the_environment() -> None:
    assert RateLimitSettings.from_env({}) == RateLimitSettings(10, 60.0)
    assert RateLimitSettings.from_env({LIMIT_ENV: "3", WINDOW_ENV: "5"}) == RateLimitSettings(3, 5.0)
    with pytest.raises(ValueError, match=LIMIT_ENV):
        RateLimitSettings.from_env({LIMIT_ENV: "many"})
    with pytest.raises(ValueError, match=WINDOW_ENV):
        RateLimitSettings.from_env({WINDOW_ENV: "0"})


def test_memory_is_bounded_by_the_address_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("workdock.ratelimit.MAX_ADDRESSES", 5)
    attempts = FailedAttempts(RateLimitSettings(limit=1, window=60))
    for n in range(20):
        attempts.record_failure(f"10.0.0.{n}")
    assert len(attempts._failures) == 5
    assert attempts.retry_after("10.0.0.19") is not None
    assert attempts.retry_after("10.0.0.0") is None  # forgotten, the oldest
