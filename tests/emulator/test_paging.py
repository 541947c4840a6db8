"""Paging across several pages with $filter and $select, via the SDK and raw HTTP (NOTES.md §6)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from batch_emulator.server import EmulatorServer


def _make_jobs(raw: httpx.Client, h: Any, count: int, prefix: str) -> None:
    for i in range(count):
        response = raw.post(
            "/jobs", params=h.API, json={"id": f"{prefix}{i:02d}", "poolInfo": {"poolId": "none"}}
        )
        assert response.status_code == 201


def test_sdk_pages_with_filter_and_select(
    fresh: EmulatorServer, raw: httpx.Client, client: Any, h: Any
) -> None:
    _make_jobs(raw, h, 7, "page-")
    _make_jobs(raw, h, 3, "other-")
    pages = list(
        client.list_jobs(
            max_results=3, filter="startswith(id,'page-')", select=["id", "state"]
        ).by_page()
    )
    items = [list(page) for page in pages]
    assert [len(p) for p in items] == [3, 3, 1]
    assert [j.id for p in items for j in p] == [f"page-{i:02d}" for i in range(7)]
    assert all(set(j.keys()) == {"id", "state"} for p in items for j in p)
    calls = [r for r in fresh.control.requests() if r["method"] == "GET" and r["path"] == "/jobs"]
    assert len(calls) == 3
    assert "%24skiptoken=" in calls[1]["query"] or "$skiptoken=" in calls[1]["query"]


def test_raw_next_link_is_absolute_and_keeps_the_query(raw: httpx.Client, h: Any) -> None:
    _make_jobs(raw, h, 7, "raw-")
    params = {
        **h.API,
        "maxresults": "2",
        "$filter": "startswith(id,'raw-') and state eq 'active'",
        "$select": "id",
    }
    response = raw.get("/jobs", params=params)
    seen: list[str] = []
    pages = 0
    while True:
        assert response.status_code == 200
        body = response.json()
        assert body["odata.metadata"].endswith("/$metadata#jobs")
        seen += [item["id"] for item in body["value"]]
        assert all(list(item) == ["id"] for item in body["value"])
        pages += 1
        link = body.get("odata.nextLink")
        if link is None:
            break
        parts = urlsplit(link)
        assert parts.scheme == "http"
        assert f"{parts.scheme}://{parts.netloc}" == str(raw.base_url).rstrip("/")
        query = parse_qs(parts.query)
        assert query["$skiptoken"][0]
        assert query["$filter"] == [params["$filter"]]
        assert query["$select"] == ["id"]
        assert query["maxresults"] == ["2"]
        response = raw.get(link)
    assert pages == 4
    assert seen == [f"raw-{i:02d}" for i in range(7)]


def test_skiptoken_is_bound_to_its_query(raw: httpx.Client, h: Any) -> None:
    _make_jobs(raw, h, 3, "tok-")
    first = raw.get("/jobs", params={**h.API, "maxresults": "1"}).json()
    token = parse_qs(urlsplit(first["odata.nextLink"]).query)["$skiptoken"][0]
    response = raw.get(
        "/jobs",
        params={**h.API, "maxresults": "1", "$filter": "state eq 'active'", "$skiptoken": token},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidQueryParameterValue"
    response = raw.get("/jobs", params={**h.API, "$skiptoken": token + "x"})
    assert response.status_code == 400


def test_task_paging_with_filter(
    fresh: EmulatorServer, raw: httpx.Client, client: Any, h: Any
) -> None:
    fresh.control.hold("*", "*", "active")
    h.new_job(client, "j")
    for i in range(8):
        h.new_task(client, "j", f"t{i}", "/bin/true")
    pages = list(
        client.list_tasks(
            "j", max_results=3, filter="state eq 'active'", select=["id", "state"]
        ).by_page()
    )
    assert [len(list(p)) for p in pages] == [3, 3, 2]
    first = raw.get("/jobs/j/tasks", params={**h.API, "maxresults": "3"}).json()
    assert first["odata.metadata"].endswith("/$metadata#tasks")
    assert first["odata.nextLink"].startswith(str(raw.base_url).rstrip("/") + "/jobs/j/tasks?")


def test_bad_query_options(raw: httpx.Client, h: Any) -> None:
    for params, code in [
        ({"maxresults": "0"}, "OutOfRangeQueryParameterValue"),
        ({"maxresults": "abc"}, "InvalidQueryParameterValue"),
        ({"$filter": "nosuchprop eq 1"}, "InvalidQueryParameterValue"),
        ({"$filter": "id eq"}, "InvalidQueryParameterValue"),
        ({"$expand": "everything"}, "InvalidQueryParameterValue"),
    ]:
        response = raw.get("/jobs", params={**h.API, **params})
        assert response.status_code == 400, params
        body = response.json()
        assert body["code"] == code
        keys = [v["key"] for v in body["values"]]
        assert keys[:2] == ["QueryParameterName", "QueryParameterValue"]
