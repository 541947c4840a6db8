"""The run's monitor link (D10), exactly the seed's Azure portal URL. Pure."""

from __future__ import annotations

from urllib.parse import quote

PORTAL = "https://portal.azure.com"


def _segment(value: str) -> str:
    # Batch ids and ARM names are URL-safe in practice; quoting keeps an odd resource
    # group name (spaces, '#') from breaking the fragment.
    return quote(value, safe="-_.()")


def monitor_url(subscription_id: str, resource_group: str, account: str, job_id: str) -> str:
    """``https://portal.azure.com/#resource/subscriptions/{subId}/resourceGroups/{rg}
    /providers/Microsoft.Batch/batchAccounts/{account}/jobs/{jobId}`` (one line)."""
    return (
        f"{PORTAL}/#resource/subscriptions/{_segment(subscription_id)}"
        f"/resourceGroups/{_segment(resource_group)}"
        f"/providers/Microsoft.Batch/batchAccounts/{_segment(account)}"
        f"/jobs/{_segment(job_id)}"
    )
