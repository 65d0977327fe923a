"""Requests the API fuzz run (`make fuzz`) found answered with a 500: each is bad input,
and gets a 4xx naming the problem; the daemon serves on."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def running(daemon):
    api = daemon.api
    cid = api.run(["sleep", "60"], HostConfig={"NetworkMode": "none"})
    yield cid
    api.remove(cid)


@pytest.mark.parametrize(("method", "path", "query", "status"), [
    ("GET", "/containers/{id}/logs", {"stdout": "1", "tail": "³"}, 400),  # a digit to isdigit, not to int
    ("GET", "/containers/{id}/top", {"ps_args": "\0"}, 400),
    ("GET", "/containers/{id}/archive", {"path": "/\0"}, 400),
    ("HEAD", "/containers/{id}/archive", {"path": "/\0"}, 400),
    ("POST", "/containers/{id}/attach", {"detachKeys": "Ā", "stream": "0"}, 400),
    ("POST", "/images/create", {}, 400),  # neither fromSrc nor fromImage
])
def test_bad_input_is_a_4xx(api, running, method, path, query, status):
    reply = api.request(method, path.format(id=running), query=query)
    assert reply.status == status, (reply.status, reply.body)
    assert api.get("/_ping").status == 200


def test_exec_with_non_ascii_detach_keys_is_refused(api, running):
    reply = api.post(f"/containers/{running}/exec", {"Cmd": ["true"], "DetachKeys": "Ā"})
    assert reply.status == 400 and "detach keys" in reply.message


def test_paths_are_matched_percent_decoded(api, running):
    """As dockerd's router: `/containers/ID%xx/json` names the decoded ID."""
    encoded = running[:11] + f"%{ord(running[11]):02X}"
    assert api.get(f"/containers/{encoded}/json").json()["Id"] == running


@pytest.mark.parametrize("aliases", [1, [1], "abc"])
def test_network_connect_with_bad_aliases_is_refused(api, aliases):
    """`Aliases` is a list of names: anything else is a 400 naming the field (was a 500,
    and "abc" became three aliases)."""
    cid = api.create(["true"])
    try:
        reply = api.post("/networks/bridge/connect", {"Container": cid, "EndpointConfig": {"Aliases": aliases}})
        assert reply.status == 400 and "Aliases" in reply.message, (reply.status, reply.body)
    finally:
        api.remove(cid)


@pytest.mark.parametrize("body", [{"NanoCpus": -1}, {"CpuQuota": -5}, {"CpuQuota": 1},
                                  {"CpuPeriod": 1, "CpuQuota": 50000}, {"PidsLimit": 99999999999},
                                  {"Memory": 10000000, "MemorySwap": 5000000}])
def test_update_checks_values_as_create_does(api, running, body):
    """Out-of-range limits are a 400 before any cgroup file is written (were a 500)."""
    reply = api.post(f"/containers/{running}/update", body)
    assert reply.status == 400, (reply.status, reply.body)
