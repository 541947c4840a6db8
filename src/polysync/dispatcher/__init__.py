"""The run engine (issue 4): `polysync worker` and the tracking code `task run` reuses.

clock.py      the injected clock (real, or fake in tests)
tracking.py   pure: the sweep's time window (poll cadence and backoff: domain/cadence.py)
ratelimit.py  one token bucket per Batch account, paused by Retry-After and quota
metrics.py    calls by operation, throttling, detection latency; Prometheus text
worker.py     the async loop: claim, submit, sweep, poll, retry, lease, stop
"""
