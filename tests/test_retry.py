"""notice/retry.py: the pure retry policy (``now`` and the random source passed in)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from notice.retry import RetryPolicy

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)


def middle() -> float:
    return 0.5  # u = 0: no jitter


@pytest.mark.parametrize(
    "attempts, seconds",
    [
        (0, 30),
        (1, 30),
        (2, 60),
        (3, 120),
        (4, 240),
        (7, 1920),
        (8, 3600),
        (9, 3600),
        (60, 3600),
        (5000, 3600),
    ],
)
def test_delays_double_from_base_up_to_the_cap(attempts, seconds):
    policy = RetryPolicy(base=30, cap=3600, jitter=0.1, max_attempts=100)
    assert policy.delay(attempts, rand=middle) == seconds


@pytest.mark.parametrize("rand, factor", [(lambda: 0.0, 0.9), (lambda: 0.999999, 1.1)])
def test_jitter_stays_within_its_bounds(rand, factor):
    policy = RetryPolicy(base=30, cap=3600, jitter=0.1)
    assert policy.delay(3, rand=rand) == pytest.approx(120 * factor, rel=1e-5)
    assert policy.delay(20, rand=rand) == pytest.approx(3600 * factor, rel=1e-5)


def test_real_jitter_is_spread_inside_the_bounds():
    policy = RetryPolicy(base=30, cap=3600, jitter=0.1)
    delays = {policy.delay(2) for _ in range(200)}
    assert all(54 <= d <= 66 for d in delays)
    assert len(delays) > 1


def test_retry_after_replaces_the_delay_and_is_capped():
    policy = RetryPolicy(base=30, cap=600)
    assert policy.delay(5, retry_after=7, rand=middle) == 7
    assert policy.delay(5, retry_after=0, rand=middle) == 0
    assert policy.delay(1, retry_after=10_000, rand=middle) == 600
    assert policy.delay(2, retry_after=-1, rand=middle) == 60  # nonsense hint: ignored


def test_next_attempt_is_now_plus_delay_until_attempts_run_out():
    policy = RetryPolicy(base=30, cap=3600, jitter=0.1, max_attempts=3)
    assert policy.next_attempt(1, NOW, rand=middle) == NOW + timedelta(seconds=30)
    assert policy.next_attempt(2, NOW, rand=middle) == NOW + timedelta(seconds=60)
    assert policy.next_attempt(2, NOW, retry_after=5) == NOW + timedelta(seconds=5)
    assert policy.next_attempt(3, NOW, rand=middle) is None
    assert policy.next_attempt(4, NOW, retry_after=1) is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"base": 0}, "0 < base <= cap"),
        ({"base": 100, "cap": 10}, "0 < base <= cap"),
        ({"jitter": 1.0}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
def test_bad_policies_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)


def test_app_config_builds_the_policy(app_factory):
    app = app_factory(
        NOTICE_RETRY_BASE=5, NOTICE_RETRY_CAP=50, NOTICE_RETRY_JITTER=0, NOTICE_MAX_ATTEMPTS=2
    )
    policy = app.notices.state(app).retry_policy
    assert policy == RetryPolicy(base=5.0, cap=50.0, jitter=0.0, max_attempts=2)
