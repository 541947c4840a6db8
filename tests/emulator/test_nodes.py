"""Compute node reads (list/get nodes) through the official SDKs, and their wire shape.

Task states are driven with the ``hold`` control: a task held in ``running`` keeps its
process's outcome until released, so a test sees it running on its node without timing.
"""

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
            id=pool_id,
            vm_size="STANDARD_D2S_V3",
            target_dedicated_nodes=nodes,
            task_slots_per_node=slots,
        )
    )


def _wait_node(client: Any, h: Any, pool_id: str, node_id: str, what: str, ok: Any) -> Any:
    """The node once ``ok(node)`` holds."""
    return h.wait_for(
        lambda: node if ok(node := client.get_node(pool_id, node_id)) else None,
        what=f"node {node_id} {what}",
    )


def test_list_seeded_pool_nodes(client: Any, h: Any) -> None:
    nodes = list(client.list_nodes(h.POOL))
    assert [n.id for n in nodes] == NODE_IDS
    for i, node in enumerate(nodes, start=1):
        assert node.url.endswith(f"/pools/{h.POOL}/nodes/{node.id}")
        assert node.state == models.BatchNodeState.IDLE
        assert node.scheduling_state == models.SchedulingState.ENABLED
        assert node.vm_size == "standard_d2s_v3"
        assert node.is_dedicated is True
        assert node.ip_address == f"10.0.0.{i}"
        assert node.affinity_id == f"TVM:{node.id}"
        assert node.allocation_time == node.last_boot_time == node.state_transition_time
        assert (node.total_tasks_run, node.total_tasks_succeeded) == (0, 0)
        assert (node.running_tasks_count, node.running_task_slots_count) == (0, 0)
        # Never ran a task: the property is left out, as the service does.
        assert node.recent_tasks is None
        assert "recentTasks" not in node
    assert client.get_node(h.POOL, NODE_IDS[1].upper()).id == NODE_IDS[1]


def test_get_node_wire_shape(raw: httpx.Client, h: Any) -> None:
    response = raw.get(f"/pools/{h.POOL}/nodes/{NODE_IDS[0]}", params=h.API)
    assert response.status_code == 200
    assert response.headers["etag"].startswith("0x")
    assert "last-modified" in response.headers
    body = response.json()
    assert body["odata.metadata"].endswith("/$metadata#nodes/@Element")
    assert "recentTasks" not in body
    assert list(body) == [
        "odata.metadata",
        "id",
        "url",
        "state",
        "schedulingState",
        "stateTransitionTime",
        "lastBootTime",
        "allocationTime",
        "ipAddress",
        "affinityId",
        "vmSize",
        "totalTasksRun",
        "totalTasksSucceeded",
        "runningTasksCount",
        "runningTaskSlotsCount",
        "isDedicated",
    ]


def test_running_then_completed_task_on_its_node(
    fresh: EmulatorServer, client: Any, h: Any
) -> None:
    fresh.control.hold("j", "t", "running")
    h.new_job(client, "j")
    h.new_task(client, "j", "t", "/bin/sh -c 'exit 0'")
    task = h.wait_task(client, "j", "t", "running")
    node_id = task.node_info.node_id
    node = client.get_node(h.POOL, node_id)
    assert node.state == models.BatchNodeState.RUNNING
    assert (node.running_tasks_count, node.running_task_slots_count) == (1, 1)
    assert node.total_tasks_run == 0
    assert node.state_transition_time > node.allocation_time
    [info] = node.recent_tasks
    assert info.task_state == models.BatchTaskState.RUNNING
    assert (info.job_id, info.task_id) == ("j", "t")
    assert info.task_url.endswith("/jobs/j/tasks/t")
    assert info.subtask_id is None
    assert info.execution_info.start_time == task.execution_info.start_time
    assert info.execution_info.end_time is None
    [other] = [n for n in client.list_nodes(h.POOL) if n.id != node_id]
    assert other.state == "idle"
    assert other.recent_tasks is None

    fresh.control.release("j", "t")
    done = h.wait_task(client, "j", "t", "completed")
    node = _wait_node(client, h, h.POOL, node_id, "to be idle", lambda n: n.state == "idle")
    assert (node.running_tasks_count, node.running_task_slots_count) == (0, 0)
    assert (node.total_tasks_run, node.total_tasks_succeeded) == (1, 1)
    [info] = node.recent_tasks
    assert info.task_state == models.BatchTaskState.COMPLETED
    assert info.execution_info.exit_code == 0
    assert info.execution_info.result == models.BatchTaskExecutionResult.SUCCESS
    assert info.execution_info.end_time == done.execution_info.end_time
    # A task's executionInfo is rendered the same way on the node as on the task.
    assert info.execution_info.as_dict() == done.execution_info.as_dict()


def test_failed_task_counts_as_run_not_succeeded(client: Any, h: Any) -> None:
    _pool(client, "solo", nodes=1)
    h.new_job(client, "j", pool_id="solo")
    h.new_task(client, "j", "t", "/bin/sh -c 'exit 3'")
    h.wait_task(client, "j", "t", "completed")
    node = client.get_node("solo", "tvmps_solo_0001")
    assert (node.total_tasks_run, node.total_tasks_succeeded) == (1, 0)
    [info] = node.recent_tasks
    assert info.execution_info.exit_code == 3
    assert info.execution_info.failure_info.code == "FailureExitCode"


def test_recent_tasks_keep_running_plus_twenty_newest_ended(
    fresh: EmulatorServer, client: Any, h: Any
) -> None:
    _pool(client, "solo", nodes=1, slots=4)
    node_id = "tvmps_solo_0001"
    fresh.control.hold("j", "live", "running")
    h.new_job(client, "j", pool_id="solo")
    client.create_tasks(
        "j",
        [
            models.BatchTaskCreateOptions(id=f"q{i:02d}", command_line="/bin/true")
            for i in range(22)
        ],
    )
    node = _wait_node(
        client, h, "solo", node_id, "to run 22 tasks", lambda n: n.total_tasks_run == 22
    )
    assert node.total_tasks_succeeded == 22
    ended = sorted(client.list_tasks("j"), key=lambda t: t.execution_info.end_time, reverse=True)
    # The 20 that ended last, newest first; the two oldest have dropped out.
    assert [i.task_id for i in node.recent_tasks] == [t.id for t in ended[:20]]
    assert all(i.task_state == "completed" for i in node.recent_tasks)

    h.new_task(client, "j", "live", "/bin/true")
    h.wait_task(client, "j", "live", "running")
    recent = client.get_node("solo", node_id).recent_tasks
    assert len(recent) == 21
    assert (recent[0].task_id, recent[0].task_state) == ("live", "running")
    assert [i.task_id for i in recent[1:]] == [t.id for t in ended[:20]]


def test_select_returns_only_those_properties(client: Any, h: Any) -> None:
    h.new_job(client, "j")
    h.new_task(client, "j", "t", "/bin/true")
    node_id = h.wait_task(client, "j", "t", "completed").node_info.node_id
    nodes = {n.id: n for n in client.list_nodes(h.POOL, select=["id", "recentTasks"])}
    assert set(nodes[node_id].keys()) == {"id", "recentTasks"}
    assert nodes[node_id].recent_tasks[0].task_id == "t"
    [idle] = [n for i, n in nodes.items() if i != node_id]
    assert set(idle.keys()) == {"id"}
    one = client.get_node(h.POOL, node_id, select=["id", "recentTasks"])
    # A single entity keeps its odata.metadata annotation (not a property).
    assert set(one.keys()) - {"odata.metadata"} == {"id", "recentTasks"}


def test_filter_on_state_and_id(fresh: EmulatorServer, client: Any, h: Any) -> None:
    fresh.control.hold("j", "t", "running")
    h.new_job(client, "j")
    h.new_task(client, "j", "t", "/bin/sh -c 'exit 0'")
    busy = h.wait_task(client, "j", "t", "running").node_info.node_id
    [idle] = [i for i in NODE_IDS if i != busy]
    assert [n.id for n in client.list_nodes(h.POOL, filter="state eq 'idle'")] == [idle]
    assert [n.id for n in client.list_nodes(h.POOL, filter="state eq 'running'")] == [busy]
    assert [n.id for n in client.list_nodes(h.POOL, filter="state ne 'idle'")] == [busy]
    assert [n.id for n in client.list_nodes(h.POOL, filter=f"id eq '{idle}'")] == [idle]
    assert list(client.list_nodes(h.POOL, filter="state eq 'offline'")) == []
    with pytest.raises(HttpResponseError) as info:
        list(client.list_nodes(h.POOL, filter="vmSize eq 'x'"))
    assert info.value.status_code == 400
    assert h.code(info.value) == "InvalidQueryParameterValue"


def test_paging_follows_next_link(
    fresh: EmulatorServer, client: Any, raw: httpx.Client, h: Any
) -> None:
    _pool(client, "five", nodes=5)
    pages = [[n.id for n in page] for page in client.list_nodes("five", max_results=2).by_page()]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [i for p in pages for i in p] == [f"tvmps_five_{i:04d}" for i in range(1, 6)]
    calls = [r for r in fresh.control.requests() if r["path"] == "/pools/five/nodes"]
    assert len(calls) == 3
    first = raw.get("/pools/five/nodes", params={**h.API, "maxresults": "2"}).json()
    assert first["odata.metadata"].endswith("/$metadata#nodes")
    link = first["odata.nextLink"]
    assert link.startswith(str(raw.base_url).rstrip("/") + "/pools/five/nodes?")
    assert parse_qs(urlsplit(link).query)["maxresults"] == ["2"]
    response = raw.get("/pools/five/nodes", params={**h.API, "maxresults": "0"})
    assert response.json()["code"] == "OutOfRangeQueryParameterValue"


def test_missing_pool_and_node(client: Any, h: Any) -> None:
    with pytest.raises(ResourceNotFoundError) as info:
        client.get_node("missing", NODE_IDS[0])
    assert h.code(info.value) == "PoolNotFound"
    with pytest.raises(ResourceNotFoundError) as info:
        list(client.list_nodes("missing"))
    assert h.code(info.value) == "PoolNotFound"
    with pytest.raises(ResourceNotFoundError) as info:
        client.get_node(h.POOL, "tvmps_pool1_0099")
    assert h.code(info.value) == "NodeNotFound"


def test_resize_removes_nodes_and_drains_busy_ones(
    fresh: EmulatorServer, client: Any, h: Any
) -> None:
    _pool(client, "shrink", nodes=3)
    fresh.control.hold("j", "t", "running")
    h.new_job(client, "j", pool_id="shrink")
    h.new_task(client, "j", "t", "/bin/sh -c 'exit 0'")
    busy = h.wait_task(client, "j", "t", "running").node_info.node_id
    client.begin_resize_pool(
        "shrink",
        models.BatchPoolResizeOptions(
            target_dedicated_nodes=0,
            node_deallocation_option=models.BatchNodeDeallocationOption.TASK_COMPLETION,
        ),
        polling_interval=0.05,
    ).result()
    # Idle nodes went at once; the busy one is leaving and takes no new tasks.
    [node] = list(client.list_nodes("shrink"))
    assert node.id == busy
    assert node.state == models.BatchNodeState.LEAVING_POOL
    assert node.scheduling_state == models.SchedulingState.DISABLED
    assert node.running_tasks_count == 1
    fresh.control.release("j", "t")
    h.wait_task(client, "j", "t", "completed")
    h.wait_for(lambda: list(client.list_nodes("shrink")) == [], what="the last node to leave")
    with pytest.raises(ResourceNotFoundError) as info:
        client.get_node("shrink", busy)
    assert h.code(info.value) == "NodeNotFound"


async def test_async_sdk_lists_and_gets_nodes(aclient: Any, h: Any) -> None:
    ids = [n.id async for n in aclient.list_nodes(h.POOL, max_results=1)]
    assert ids == NODE_IDS
    node = await aclient.get_node(h.POOL, NODE_IDS[0])
    assert node.state == "idle"
    assert node.vm_size == "standard_d2s_v3"
