"""D10: the monitor link is exactly the seed's portal URL."""

from __future__ import annotations

import pytest

from polysync.jobtypes.azure_batch.links import monitor_url


@pytest.mark.parametrize(
    ("sub", "rg", "account", "job", "expected"),
    [
        (
            "11111111-2222-3333-4444-555555555555",
            "rg-batch",
            "devaccount",
            "ps-abcd1234-r1-a1",
            "https://portal.azure.com/#resource/subscriptions/11111111-2222-3333-4444-555555555555"
            "/resourceGroups/rg-batch/providers/Microsoft.Batch/batchAccounts/devaccount"
            "/jobs/ps-abcd1234-r1-a1",
        ),
        (
            "sub",
            "My.RG_(prod)",
            "acct",
            "Job_X",
            "https://portal.azure.com/#resource/subscriptions/sub/resourceGroups/My.RG_(prod)"
            "/providers/Microsoft.Batch/batchAccounts/acct/jobs/Job_X",
        ),
        (
            "sub",
            "rg with space",
            "acct",
            "j",
            "https://portal.azure.com/#resource/subscriptions/sub/resourceGroups/rg%20with%20space"
            "/providers/Microsoft.Batch/batchAccounts/acct/jobs/j",
        ),
    ],
)
def test_monitor_url(sub: str, rg: str, account: str, job: str, expected: str) -> None:
    assert monitor_url(sub, rg, account, job) == expected
