"""Compute node reads (list/get nodes) through the official SDKs, and their wire shape."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from azure.batch import models
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from batch_emulator.server import EmulatorServer

# The seeded pool1 has 2 nodes × 2 slots (conftest).
NODE_IDS = ["tvmps_pool1_0001", "tvmps_pool1_0002"]


def _pool(client: Any, pool_id: str, nodes: int, slots: int = 1) -> None:
    client.create_pool(
        models.BatchPoolCreateOptions(
            id=pool_id, vm_size="standard_d2s_v3", target_dedicated_nodes=nodes,
            task_slots_per_node=slots,
        )
    )


def _wait_node(client: Any, pool_id: str, node_id: str, ok: Any, what: str) -> Any:
    """The node once ``ok(node)`` holds."""

    def probe() -> Any:
        node = client.get_node(pool_id, node_id)
        return node if ok(node) else None

    return _h_wait_for(probe, what)


def _h_wait_for(probe: Any, what: str) -> Any:
    import time

    deadline = time.monotonic() + 15
    while (value := probe()) is None:
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out waiting for {what}.")
        time.sleep(0.02)
    return value
