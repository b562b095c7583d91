"""The in-process rate limit of anonymous service API calls, on a clock we move."""

from __future__ import annotations

from notice.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_gets_limit_calls_per_window_then_the_wait():
    clock = Clock()
    limiter = RateLimiter(2, window=60.0, clock=clock)
    assert limiter.hit("a") == 0
    clock.now += 10
    assert limiter.hit("a") == 0
    assert limiter.hit("a") == 50  # the first call leaves the window in 50 s
    assert limiter.hit("b") == 0  # keys are counted apart
    clock.now += 50
    assert limiter.hit("a") == 0  # refused calls were not counted
    assert limiter.hit("a") == 10


def test_idle_keys_are_forgotten_past_the_key_limit():
    clock = Clock()
    limiter = RateLimiter(1, window=60.0, max_keys=3, clock=clock)
    for key in "abc":
        limiter.hit(key)
    clock.now += 61
    assert limiter.hit("d") == 0
    assert sorted(limiter._hits) == ["d"]
