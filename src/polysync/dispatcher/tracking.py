"""The worker's sweep window: which completion times the next ``GET /jobs`` sweep asks for.

Per-run poll cadence and backoff, which `task run` shares, are in
``polysync.domain.cadence``.
"""

from __future__ import annotations

from datetime import datetime, timedelta


class SweepWindow:
    """Which completion times the next sweep asks for.

    The watermark is the latest job ``endTime`` a sweep has seen — Batch's own clock, so
    there is no skew with ours. Each sweep asks for ``endTime ≥ watermark − margin``: the
    margin re-covers jobs whose completion became visible a little late (list results are
    eventually consistent). Jobs seen twice are harmless (the run is no longer tracked).
    """

    def __init__(self, start: datetime, margin_s: float) -> None:
        self.watermark = start
        self.margin = timedelta(seconds=margin_s)

    def since(self) -> datetime:
        return self.watermark - self.margin

    def observe(self, end_times: list[datetime | None]) -> None:
        seen = [t for t in end_times if t is not None]
        if seen:
            self.watermark = max(self.watermark, max(seen))
