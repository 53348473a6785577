"""Retry policy (exponential backoff, jitter, Retry-After), the deadline, and the one waiter every retry or poll loop
pauses through: it never sleeps past the deadline."""
from __future__ import annotations

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.waiter import Deadline, RetryPolicy, Waiter

from scripted_http import FakeClock


def test_backoff_is_exponential_and_capped():
    policy = RetryPolicy(retries=6, backoff=0.5, backoff_max=3.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_shortens_by_at_most_the_fraction():
    policy = RetryPolicy(backoff=2.0, backoff_max=100, jitter=0.5)
    assert policy.delay(1, rand=0.0) == 2.0
    assert policy.delay(1, rand=1.0) == 1.0
    assert 1.0 <= policy.delay(2, rand=0.3) * 0.5 <= 2.0


def test_retry_after_is_honoured_up_to_backoff_max():
    policy = RetryPolicy(backoff=0.5, backoff_max=5.0, jitter=0.0)
    assert policy.delay(1, retry_after=3) == 3.0
    assert policy.delay(1, retry_after=60) == 5.0
    assert policy.delay(3, retry_after=0.1) == 2.0


def test_deadline_runs_on_the_given_clock():
    clock = FakeClock()
    deadline = Deadline(5, clock)
    clock.sleep(2)
    assert deadline.remaining() == 3.0 and deadline.elapsed() == 2.0 and not deadline.expired()
    clock.sleep(3)
    assert deadline.remaining() == 0.0 and deadline.expired()


def test_waiter_pauses_only_while_the_pause_ends_before_the_deadline():
    clock = FakeClock()
    waiter = Waiter(Deadline(5, clock), clock.sleep)
    assert waiter.pause(1.0) and waiter.pause(3.0)
    assert not waiter.fits(1.0)
    assert not waiter.pause(1.0)
    assert clock.sleeps == [1.0, 3.0]


def test_waiter_without_a_deadline_always_pauses():
    clock = FakeClock()
    waiter = Waiter(None, clock.sleep)
    assert waiter.pause(100.0) and waiter.pause(0.0)
    assert clock.sleeps == [100.0]
