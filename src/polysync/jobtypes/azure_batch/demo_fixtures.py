"""Set-up for `polysync demo`: a pool and a template Batch Job, created idempotently.

Goes through :class:`~polysync.jobtypes.azure_batch.client.BatchApi` like everything else,
so the demo exercises the same client code a real account would.
"""

from __future__ import annotations

from collections.abc import Mapping

from polysync.domain.models import Platform
from polysync.errors import PlatformError
from polysync.jobtypes.azure_batch.jobtype import BatchJobType


async def ensure_demo_template(
    jobtype: BatchJobType,
    platform: Platform,
    *,
    pool_id: str,
    template_id: str,
    command_line: str,
    environment: Mapping[str, str],
) -> bool:
    """Create the pool and the template job unless they exist; True if anything was created."""
    api = await jobtype.api(platform)
    created = False
    try:
        await api.get_pool(pool_id, select=["id"])
    except PlatformError as exc:
        if exc.batch_code != "PoolNotFound":
            raise
        await api.create_pool(
            {
                "id": pool_id,
                "vmSize": "standard_d2s_v3",
                "targetDedicatedNodes": 1,
                "taskSlotsPerNode": 4,
            }
        )
        created = True
    try:
        await api.get_job(template_id, select=["id"])
        return created
    except PlatformError as exc:
        if exc.batch_code != "JobNotFound":
            raise
    await api.create_job(
        {
            "id": template_id,
            "displayName": "Polysync demo template",
            "poolInfo": {"poolId": pool_id},
            "constraints": {"maxWallClockTime": "PT10M"},
            "commonEnvironmentSettings": [{"name": k, "value": v} for k, v in environment.items()],
        }
    )
    await api.create_task(template_id, {"id": "template-task", "commandLine": command_line})
    return True
