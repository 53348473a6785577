# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Time for the HTTP checks: an overall deadline on a monotonic clock, the retry policy, and the one waiter
that every retry or poll loop pauses through (never past the deadline)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time


# A 429 is the one HTTP answer retried by default: it says "not now", not "unhealthy".
DEFAULT_RETRY_STATUSES = (429,)


class Deadline:
    """An overall time budget on a monotonic clock (wall-clock jumps never shorten or extend it)."""

    def __init__(self, seconds, clock=time.monotonic):
        self.seconds = float(seconds)
        self._clock = clock
        self.start = clock()
        self.end = self.start + self.seconds

    def remaining(self):
        return max(0.0, self.end - self._clock())

    def expired(self):
        return self._clock() >= self.end

    def elapsed(self):
        return self._clock() - self.start


class RetryPolicy:
    """``retries`` more attempts after the first, waiting ``backoff * 2**(n-1)`` seconds (capped at
    ``backoff_max``) before attempt n+1, shortened by up to ``jitter`` (a fraction) at random so many
    clients do not retry in step. A server's ``Retry-After`` is honoured when it asks for longer."""

    def __init__(self, retries=3, backoff=0.5, backoff_max=10.0, jitter=0.5, retry_statuses=DEFAULT_RETRY_STATUSES):
        self.retries = max(0, int(retries))
        self.backoff = max(0.0, float(backoff))
        self.backoff_max = max(0.0, float(backoff_max))
        self.jitter = min(1.0, max(0.0, float(jitter)))
        self.retry_statuses = frozenset(int(code) for code in retry_statuses)

    def delay(self, retry_number, rand=0.0, retry_after=None):
        """Seconds to wait before retry ``retry_number`` (1 for the first retry)."""
        base = min(self.backoff_max, self.backoff * (2 ** (retry_number - 1)))
        wait = base * (1.0 - self.jitter * rand)
        if retry_after is not None and retry_after > wait:
            wait = min(float(retry_after), max(self.backoff_max, wait))
        return wait

    def retryable_status(self, status):
        return status in self.retry_statuses


class Waiter:
    """Pauses between attempts of a loop (request retries, TLS handshakes, polls of a starting service) without ever
    sleeping past ``deadline``. ``sleep`` is injectable so loops are tested on a fake clock."""

    def __init__(self, deadline=None, sleep=time.sleep):
        self.deadline = deadline
        self.sleep = sleep

    def fits(self, delay):
        """Whether a pause of ``delay`` seconds leaves time before the deadline."""
        return self.deadline is None or delay < self.deadline.remaining()

    def pause(self, delay):
        """Sleep ``delay`` seconds and return True, or return False at once when the deadline would pass first."""
        if not self.fits(delay):
            return False
        if delay > 0:
            self.sleep(delay)
        return True
