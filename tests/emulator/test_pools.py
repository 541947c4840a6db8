"""Pools through the official sync SDK: create/get/list/exists/delete/resize and slots."""

from __future__ import annotations

from typing import Any

import pytest
from azure.batch import models
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError


def _pool(pool_id: str, nodes: int = 1, slots: int = 1) -> models.BatchPoolCreateOptions:
    return models.BatchPoolCreateOptions(
        id=pool_id,
        vm_size="STANDARD_D2S_V3",
        target_dedicated_nodes=nodes,
        task_slots_per_node=slots,
        metadata=[models.BatchMetadataItem(name="owner", value="tests")],
    )


def test_seeded_pool_is_there(client: Any, h: Any) -> None:
    pool = client.get_pool(h.POOL)
    assert pool.current_dedicated_nodes == 2
    assert pool.task_slots_per_node == 2
    assert pool.state == models.BatchPoolState.ACTIVE
    assert pool.allocation_state == models.AllocationState.STEADY


def test_create_get_list_pool(client: Any) -> None:
    client.create_pool(_pool("Pool-X", nodes=3, slots=2))
    pool = client.get_pool("pool-x")
    assert pool.id == "Pool-X"
    assert pool.vm_size == "standard_d2s_v3"  # the service answers lower-case
    assert pool.target_dedicated_nodes == 3
    assert pool.current_dedicated_nodes == 3
    assert pool.target_low_priority_nodes == 0
    assert pool.enable_auto_scale is False
    assert pool.metadata[0].value == "tests"
    assert pool.url.endswith("/pools/Pool-X")
    ids = [p.id for p in client.list_pools()]
    assert "Pool-X" in ids
    assert [p.id for p in client.list_pools(filter="startswith(id,'pool-')")] == ["Pool-X"]


def test_pool_ids_clash_ignoring_case(client: Any, h: Any) -> None:
    client.create_pool(_pool("p1"))
    with pytest.raises(ResourceExistsError) as info:
        client.create_pool(_pool("P1"))
    assert h.code(info.value) == "PoolExists"


def test_pool_not_found_and_exists(client: Any, h: Any) -> None:
    with pytest.raises(ResourceNotFoundError) as info:
        client.get_pool("missing")
    assert h.code(info.value) == "PoolNotFound"
    assert client.pool_exists(h.POOL) is True
    # SDK 15.1.0 raises instead of returning False (NOTES.md §11.7), as against the service.
    with pytest.raises(ResourceNotFoundError):
        client.pool_exists("missing")


def test_autoscale_settings_are_stored(client: Any) -> None:
    client.create_pool(
        models.BatchPoolCreateOptions(
            id="auto",
            vm_size="small",
            enable_auto_scale=True,
            auto_scale_formula="$TargetDedicatedNodes = 2;",
        )
    )
    pool = client.get_pool("auto")
    assert pool.enable_auto_scale is True
    assert pool.auto_scale_formula == "$TargetDedicatedNodes = 2;"
    assert pool.current_dedicated_nodes == 2
    with pytest.raises(HttpResponseError) as info:
        client.begin_resize_pool(
            "auto", models.BatchPoolResizeOptions(target_dedicated_nodes=1), polling_interval=1
        )
    assert info.value.status_code == 409


def test_zero_node_pool_never_starts_tasks_until_resized(client: Any, h: Any) -> None:
    client.create_pool(_pool("empty", nodes=0))
    h.new_job(client, "j", pool_id="empty")
    h.new_task(client, "j", "t", "/bin/sh -c 'exit 0'")
    assert client.get_task("j", "t").state == "active"
    poller = client.begin_resize_pool(
        "empty", models.BatchPoolResizeOptions(target_dedicated_nodes=1), polling_interval=0.05
    )
    poller.result()
    assert poller.status() == "Succeeded"
    pool = client.get_pool("empty")
    assert pool.current_dedicated_nodes == 1
    assert pool.allocation_state == "steady"
    assert h.wait_task(client, "j", "t", "completed").execution_info.exit_code == 0


def test_shrinking_requeues_running_tasks(client: Any, h: Any) -> None:
    client.create_pool(_pool("shrink", nodes=1))
    h.new_job(client, "j", pool_id="shrink")
    h.new_task(client, "j", "t", "/bin/sh -c 'sleep 30'")
    h.wait_task(client, "j", "t", "running")
    client.begin_resize_pool(
        "shrink", models.BatchPoolResizeOptions(target_dedicated_nodes=0), polling_interval=0.05
    ).result()
    task = h.wait_for(
        lambda: (t := client.get_task("j", "t")).state == "active" and t,
        what="requeued task",
    )
    assert task.execution_info.requeue_count == 1
    assert task.execution_info.last_requeue_time is not None
    assert client.get_pool("shrink").current_dedicated_nodes == 0


def test_delete_pool_with_poller(client: Any, h: Any) -> None:
    client.create_pool(_pool("gone"))
    poller = client.begin_delete_pool("gone", polling_interval=0.05)
    assert client.get_pool("gone").state == models.BatchPoolState.DELETING
    poller.result()
    with pytest.raises(ResourceNotFoundError):
        client.get_pool("gone")
