"""The `Batch Job` job type (D1–D11).

    client.py       the only module importing azure.batch: async adapter + error mapping
    credentials.py  PlatformAuth → azure-core / azure-identity credential
    plan.py         pure: template + overrides + parameters → job and task bodies (D2, D3, D11)
    status.py       pure: Batch task → seed status + failure (D6)
    links.py        pure: the portal monitor link (D10)
    jobtype.py      BatchJobType, the JobType the services call

Import ``polysync.jobtypes.azure_batch.jobtype`` for ``BatchJobType``; this package itself
stays light so the pure modules load without the Azure SDK.
"""
