"""Bad input refused with a 400 that names it: query times (`since`/`until`), network
names, IPAM pools. No value, however long or odd, gets past as a 500."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.api import query
from engine.errors import BadRequest
from engine.network import networks


@pytest.mark.parametrize("value,ns", [
    ("1", 10**9), ("-5", -5 * 10**9), ("1.5", 15 * 10**8), ("0", 0), ("007", 7 * 10**9),
    ("253402300799.999999999", 253402300799999999999),  # the last instant of 9999
    ("-62135596800", -62135596800 * 10**9),  # the first of year 1
    ("2026-01-02T03:04:05.123456789Z", 1767323045123456789),
    ("2026-01-02T04:04:05.5+01:00", 1767323045500000000),
])
def test_timestamps(value, ns):
    assert query.timestamp(value, "since") == ns


@pytest.mark.parametrize("value,reason", [
    ("99999999999999999999", "not a time between"), ("-99999999999999999999", "not a time between"),
    ("9" * 5000, "not a time between"), ("253402300800", "not a time between"),
    ("9999-12-31T23:59:59-01:00", "not a time between"),
    ("abc", "not a unix timestamp"), ("1e5", "not a unix timestamp"), ("\u00b2", "not a unix timestamp"),
    ("1.", "not a unix timestamp"), ("10000-01-01T00:00:00Z", "not a unix timestamp"),
    ("2026-01-02T03:04:05.1.2Z", "not a unix timestamp"),
])
def test_bad_timestamps_name_the_parameter(value, reason):
    with pytest.raises(BadRequest) as raised:
        query.timestamp(value, "until")
    assert raised.value.message.startswith("invalid value for until: ") and reason in raised.value.message
    assert len(raised.value.message) < 200  # a 5000-digit value is not echoed back


@given(st.text(max_size=60))
def test_any_text_is_a_time_or_a_400(value):
    try:
        ns = query.timestamp(value, "since")
    except BadRequest:
        return
    assert ns is None or -62135596800 * 10**9 <= ns < 253402300800 * 10**9


@pytest.mark.parametrize("name", ["a/b", "..", ".", "", "a\x00b"])
def test_network_names_refused(name):
    with pytest.raises(BadRequest, match=r"Invalid network name"):
        networks.check_name(name)


@pytest.mark.parametrize("name", ["a", "x.y", "net-1_2", "A..b", "0", " x", "-x", "_x", "x y", "né"])
def test_network_names_taken(name):
    networks.check_name(name)


NET = ipaddress.ip_network("10.1.0.0/16")


@pytest.mark.parametrize("pool,message", [
    ({"gateway": "x"}, "invalid gateway x: invalid address"),
    ({"gateway": "10.2.0.1"}, "invalid gateway 10.2.0.1: parent subnet 10.1.0.0/16 doesn't contain this address"),
    ({"gateway": "fd00::1"}, "invalid gateway fd00::1: parent subnet is an IPv4 block"),
    ({"ip_range": "nonsense"}, "invalid ip-range nonsense: invalid CIDR block notation"),
    ({"ip_range": "10.1.2.3"}, "invalid ip-range 10.1.2.3: invalid CIDR block notation"),
    ({"ip_range": "10.1.2.1/24"}, "invalid ip-range 10.1.2.1/24: it should be 10.1.2.0/24"),
    ({"ip_range": "10.0.0.0/8"}, "invalid ip-range 10.0.0.0/8: parent subnet 10.1.0.0/16 doesn't contain ip-range"),
    ({"ip_range": "10.2.0.0/24"}, "invalid ip-range 10.2.0.0/24: parent subnet 10.1.0.0/16 doesn't contain ip-range"),
    ({"ip_range": "fd00::/64"}, "invalid ip-range fd00::/64: parent subnet is an IPv4 block"),
    ({"aux_addresses": {"host": "10.9.9.9"}}, "invalid auxiliary address host=10.9.9.9: parent subnet"),
    ({"aux_addresses": {"host": ""}}, "invalid auxiliary address host=: invalid address"),
])
def test_ipam_pools_refused(pool, message):
    with pytest.raises(BadRequest) as raised:
        networks.check_pool(NET, **{"aux_addresses": {}, **pool})
    assert raised.value.message.startswith(message)


def test_ipam_pool_inside_its_subnet():
    networks.check_pool(NET, gateway="10.1.0.254", ip_range="10.1.4.0/22", aux_addresses={"router": "10.1.0.2"})
    networks.check_pool(ipaddress.ip_network("fd00::/64"), gateway="fd00::1", ip_range="fd00::/80", aux_addresses={})


@pytest.mark.parametrize("name", ["a/b", "a:b", "a b", "a\x00", ".", "..", "x" * 16, "é" * 8])
def test_bridge_names_refused(name):
    with pytest.raises(BadRequest, match="invalid bridge name"):
        networks.check_link_name(name)
