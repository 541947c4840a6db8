"""Property-based run of our own OpenAPI document (schemathesis): no request, however odd,
makes the server fail. 5xx answers are allowed only as problem+json 502/503 (Azure Batch
refused or could not be reached), never as a 500."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from tests.api.conftest import KEY_ENV
from tests.support import SUBSCRIPTION

MAX_EXAMPLES = 6


@pytest.fixture
def api_schema(live_server: tuple[str, str], emulator: Any) -> Any:
    import httpx

    base, token = live_server
    headers = {"Authorization": f"Bearer {token}"}
    # Something to find: a reachable platform named like the schema's examples.
    httpx.post(
        base + "/api/platforms",
        headers=headers,
        json={
            "name": "prod-westeu",
            "account_url": emulator.endpoint,
            "account_name": emulator.account,
            "subscription_id": SUBSCRIPTION,
            "resource_group": "rg",
            "key_env": KEY_ENV,
        },
    ).raise_for_status()
    # The schema is behind the API's auth, like the API itself.
    schema = schemathesis.openapi.from_url(base + "/openapi.json", headers=headers)
    # The event stream never ends by design; it has its own test.
    return schema.exclude(path="/api/events")


def test_no_server_errors(api_schema: Any, live_server: tuple[str, str]) -> None:
    base, token = live_server
    headers = {"Authorization": f"Bearer {token}"}
    seen: list[str] = []

    for result in api_schema.get_all_operations():
        operation = result.ok()
        seen.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.explicit, Phase.generate],
        )
        def check(case: Any) -> None:
            response = case.call(base_url=base, headers=headers)
            if response.status_code >= 500:
                assert response.status_code in (502, 503), (case.path, response.text)
                assert response.headers["content-type"].startswith("application/problem+json")

        check()
    # Every resource was exercised (the stream excepted).
    assert len(seen) >= 30
    assert "GET /api/runs/{run_id}/logs" in seen
