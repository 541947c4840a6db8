"""One rate limiter per Batch account: a token bucket for create calls, plus pauses.

* Submissions take tokens (one per create call: ``POST /jobs``, ``POST /jobs/{id}/tasks``,
  ``PATCH /jobs/{id}`` — three per run), refilled at ``rate_per_s`` with a one-second
  burst. This keeps a backlog of thousands of Queued runs from arriving at Batch at once.
* A 429/503 that outlived the SDK's own retries pauses *every* call to that account for
  its ``Retry-After`` (or a doubling backoff when Batch gave none), so a throttled account
  is left alone instead of hammered (NOTES.md §9.4).
* ``ActiveJobAndScheduleQuotaReached`` holds submissions only (polls go on: they are how
  the running jobs that free the quota are seen to end), with a doubling backoff.

Time comes from the injected clock, so the limiter is deterministic in tests.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from polysync.domain.cadence import Backoff

CALLS_PER_SUBMISSION = 3


class AccountLimiter:
    def __init__(self, rate_per_s: float, now: datetime) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"the submit rate must be positive, got {rate_per_s}")
        self.rate_per_s = rate_per_s
        # At least one whole submission fits in the bucket, whatever the rate.
        self.capacity = max(rate_per_s, float(CALLS_PER_SUBMISSION))
        self.tokens = self.capacity
        self._refilled = now
        self.paused_until: datetime | None = None
        self.quota_until: datetime | None = None
        self._throttle = Backoff(first_s=0.5, cap_s=30.0)
        self._quota = Backoff(first_s=2.0, cap_s=60.0)
        self.throttle_events = 0
        self.quota_events = 0

    def _refill(self, now: datetime) -> None:
        elapsed = (now - self._refilled).total_seconds()
        if elapsed > 0:
            self.tokens = min(self.capacity, self.tokens + elapsed * self.rate_per_s)
            self._refilled = now

    def paused(self, now: datetime) -> bool:
        """True while Batch asked us to back off this account (every call waits)."""
        return self.paused_until is not None and now < self.paused_until

    def can_submit(self, now: datetime) -> bool:
        if self.paused(now):
            return False
        return self.quota_until is None or now >= self.quota_until

    def try_submit(self, now: datetime) -> bool:
        """Take the tokens of one submission if allowed now."""
        self._refill(now)
        if not self.can_submit(now) or self.tokens < CALLS_PER_SUBMISSION:
            return False
        self.tokens -= CALLS_PER_SUBMISSION
        return True

    def give_back(self) -> None:
        """A submission that made no create call (e.g. refused before) returns its tokens."""
        self.tokens = min(self.capacity, self.tokens + CALLS_PER_SUBMISSION)

    def throttled(self, now: datetime, retry_after_s: float | None) -> float:
        """Pause the account; returns the pause in seconds."""
        self.throttle_events += 1
        if retry_after_s is not None:
            pause = retry_after_s
        elif self.paused(now):
            # Calls already in flight when the pause began report in too: one escalation
            # per pause, or a burst of answers would double the backoff many times over.
            assert self.paused_until is not None
            return (self.paused_until - now).total_seconds()
        else:
            pause = self._throttle.next_s()
        until = now + timedelta(seconds=pause)
        if self.paused_until is None or until > self.paused_until:
            self.paused_until = until
        return pause

    def quota_reached(self, now: datetime) -> float:
        self.quota_events += 1
        pause = self._quota.next_s()
        self.quota_until = now + timedelta(seconds=pause)
        return pause

    def succeeded(self) -> None:
        self._throttle.reset()
        self._quota.reset()
        self.quota_until = None

    def wait_s(self, now: datetime) -> float:
        """Seconds until a submission could be allowed (0 when it is now)."""
        self._refill(now)
        waits = [0.0]
        for until in (self.paused_until, self.quota_until):
            if until is not None and until > now:
                waits.append((until - now).total_seconds())
        if self.tokens < CALLS_PER_SUBMISSION:
            waits.append((CALLS_PER_SUBMISSION - self.tokens) / self.rate_per_s)
        return max(waits)
