"""Bridge networking through the Engine API and the docker CLI: addresses, /etc/hosts,
user-defined networks with their DNS, published ports. Traffic goes only to loopback and
to the test daemon's own container addresses; its networks lead nowhere else."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid

import pytest

from engine.network import ports


def out(api, cid) -> str:
    return b"".join(p for s, p in api.logs(cid) if s == 1).decode()


def run_done(api, cmd, **fields) -> str:
    cid = api.run(cmd, **fields)
    assert api.wait(cid) == 0, out(api, cid)
    text = out(api, cid)
    api.remove(cid)
    return text


def fetch_when_up(url: str, timeout: float = 10) -> bytes:
    """GET `url`, retrying while the server in the container is still starting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return urllib.request.urlopen(url, timeout=2).read()
        except OSError:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_default_bridge_address_hosts_and_reach(api, daemon):
    subnet = ipaddress.ip_network(daemon.subnet)
    cid = api.run(["sh", "-c", "mkdir /www; echo served > /www/f; exec httpd -f -p 8080 -h /www"], Hostname="webhost")
    net = api.get_json(f"/containers/{cid}/json")["NetworkSettings"]
    ip = net["IPAddress"]
    assert ipaddress.ip_address(ip) in subnet and net["Gateway"] == str(next(subnet.hosts()))
    assert net["Networks"]["bridge"]["IPAddress"] == ip and net["MacAddress"].startswith("02:42:")
    assert fetch_when_up(f"http://{ip}:8080/f") == b"served\n"
    api.remove(cid)
    text = run_done(api, ["sh", "-c", "cat /etc/hosts; ip route"], Hostname="hostsbox")
    assert "\thostsbox\n" in text and f"default via {next(subnet.hosts())}" in text


def test_none_and_host_modes(api, daemon):
    since = time.time()
    assert run_done(api, ["ls", "/sys/class/net"], HostConfig={"NetworkMode": "none"}).split() == ["lo"]
    host_links = run_done(api, ["ls", "/sys/class/net"], HostConfig={"NetworkMode": "host"}).split()
    assert "lo" in host_links and len(host_links) > 1  # the host's own interfaces
    reply = api.get("/events", since=f"{since:.9f}", until=f"{time.time():.9f}",
                    filters=json.dumps({"type": ["network"]}))
    seen = [(e["Action"], e["Actor"]["Attributes"]["name"], e["Actor"]["Attributes"]["type"])
            for e in map(json.loads, reply.body.splitlines())]
    # as dockerd reports them (checked against Debian's 20.10): joining and leaving none and host
    assert seen == [("connect", "none", "null"), ("disconnect", "none", "null"),
                    ("connect", "host", "host"), ("disconnect", "host", "host")]
    reply = api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "nope"}})
    assert reply.status == 400 and reply.message == "network nope not found"  # a 404 would make docker pull
    # ports published on none or host are accepted and discarded, as dockerd (compose's
    # `network_mode: host` with `ports:`), with dockerd's warning for host
    bindings = {"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}
    for mode, warned in (("none", []), ("host", ["Published ports are discarded when using host network mode"])):
        reply = api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"],
                                                "HostConfig": {"NetworkMode": mode, **bindings}})
        assert reply.status == 201 and reply.json()["Warnings"] == warned, reply.body
        assert api.post(f"/containers/{reply.json()['Id']}/start").status == 204
        assert api.wait(reply.json()["Id"]) == 0
        api.remove(reply.json()["Id"])


def test_container_network_mode_shares_the_donors_namespace_and_files(api):
    name = f"net-{uuid.uuid4().hex[:6]}"
    assert api.post("/networks/create", {"Name": name}).status == 201
    donor = api.run(["sh", "-c", "mkdir /www; echo from-donor > /www/i; exec httpd -f -p 8080 -h /www"],
                    name=f"donor-{name}", Hostname="donorhost", HostConfig={"NetworkMode": name})
    side = None
    try:
        # compose's `network_mode: service:x`: the donor's interfaces, its localhost, its name and files
        side = api.run(["sh", "-c", "sleep 0.3; wget -qO- http://127.0.0.1:8080/i; hostname; "
                                    "cat /etc/resolv.conf; ls /sys/class/net"],
                       HostConfig={"NetworkMode": f"container:donor-{name}"})
        assert api.wait(side) == 0
        text = b"".join(p for _, p in api.logs(side)).decode()
        assert text.startswith("from-donor\ndonorhost\n") and "nameserver 127.0.0.11" in text
        assert text.split("\n")[-3:] == ["eth0", "lo", ""]
        shown = api.get_json(f"/containers/{side}/json")
        assert shown["HostConfig"]["NetworkMode"] == f"container:{donor}"  # the name as the ID, as dockerd
        assert shown["NetworkSettings"]["Networks"] == {}
        reply = api.post(f"/networks/{name}/connect", {"Container": side})
        assert reply.status == 400 and "sharing network namespace" in reply.message
        for conflict, words in (({"Hostname": "x"}, "hostname and the network mode"),
                                ({"HostConfig": {"PortBindings": {"80/tcp": [{}]}}},
                                 "port publishing and the container type network mode"),
                                ({"HostConfig": {"Dns": ["1.1.1.1"]}}, "dns and the network mode")):
            body = {"Image": "busybox", "Cmd": ["true"], **conflict}
            body["HostConfig"] = {**body.get("HostConfig", {}), "NetworkMode": f"container:{donor}"}
            reply = api.post("/containers/create", body)
            assert reply.status == 400 and reply.message == f"conflicting options: {words}"
        missing = api.post("/containers/create", {"Image": "busybox", "HostConfig": {"NetworkMode": "container:nosuch"}})
        assert missing.status == 400 and "nosuch" in missing.message
        api.post(f"/containers/{donor}/stop", t=0)
        reply = api.post(f"/containers/{side}/start")
        assert reply.status == 409 and reply.message == f"cannot join network of a non running container: {donor}"
    finally:
        for c in (side, donor):
            if c:
                api.remove(c)
        api.delete(f"/networks/{name}")


def test_addresses_are_released(api):
    first = api.run(["sleep", "60"])
    ip = api.get_json(f"/containers/{first}/json")["NetworkSettings"]["IPAddress"]
    api.remove(first)
    second = api.run(["sleep", "60"])
    assert api.get_json(f"/containers/{second}/json")["NetworkSettings"]["IPAddress"] == ip
    api.post(f"/containers/{second}/stop", t=0)
    assert api.get_json(f"/containers/{second}/json")["NetworkSettings"]["IPAddress"] == ""
    api.remove(second)


def test_user_network_dns_aliases_connect_and_events(api):
    since = time.time()
    name = f"net-{uuid.uuid4().hex[:6]}"
    created = api.post("/networks/create", {"Name": name, "Labels": {"t": "1"}})
    assert created.status == 201
    assert api.post("/networks/create", {"Name": name}).status == 409
    info = api.get_json(f"/networks/{name}")
    assert info["Driver"] == "bridge" and info["IPAM"]["Config"][0]["Subnet"].startswith("10.89.")
    db = api.run(["sleep", "60"], name=f"db-{name}", HostConfig={"NetworkMode": name}, Hostname="dbhost",
                 NetworkingConfig={"EndpointsConfig": {name: {"Aliases": ["database"]}}})
    endpoint = api.get_json(f"/containers/{db}/json")["NetworkSettings"]["Networks"][name]
    db_ip = endpoint["IPAddress"]
    # as dockerd: the short ID and the host name are aliases too, each once
    assert endpoint["Aliases"] == ["database", db[:12], "dbhost"]
    text = run_done(api, ["sh", "-c", f"cat /etc/resolv.conf; nslookup db-{name}; nslookup database; "
                                      f"nslookup dbhost; nslookup db-{name}.{name}; nslookup nothing-here || echo NX"],
                    HostConfig={"NetworkMode": name})
    # as dockerd: NAME.NETWORK too
    assert "nameserver 127.0.0.11" in text and text.count(f"Address: {db_ip}") == 4 and "NX" in text
    other = api.run(["sleep", "60"])
    assert api.post(f"/networks/{name}/connect", {"Container": other}).status == 200
    nets = api.get_json(f"/containers/{other}/json")["NetworkSettings"]["Networks"]
    assert set(nets) == {"bridge", name}
    assert list(api.get_json(f"/networks/{name}")["Containers"]) == sorted([db, other]) or \
        set(api.get_json(f"/networks/{name}")["Containers"]) == {db, other}
    assert api.post(f"/networks/{name}/disconnect", {"Container": other}).status == 200
    assert set(api.get_json(f"/containers/{other}/json")["NetworkSettings"]["Networks"]) == {"bridge"}
    assert api.delete(f"/networks/{name}").status == 409  # db is on it
    assert api.delete("/networks/bridge").status == 409
    for c in (db, other):
        api.remove(c)
    assert api.delete(f"/networks/{name}").status == 204
    reply = api.get("/events", since=f"{since:.9f}", until=f"{time.time():.9f}",
                    filters=json.dumps({"type": ["network"]}))
    events = [json.loads(line) for line in reply.body.splitlines()]
    mine = [e["Action"] for e in events if e["Actor"]["Attributes"]["name"] == name]
    assert mine[0] == "create" and mine[-1] == "destroy"
    # every run's connect has its disconnect, on the user network and the default bridge alike
    for c, net in ((db, name), (other, name), (other, "bridge")):
        seen = [e["Action"] for e in events
                if e["Actor"]["Attributes"].get("container") == c and e["Actor"]["Attributes"]["name"] == net]
        assert seen and seen.count("connect") == seen.count("disconnect"), (c, net, seen)
        assert all(a != b for a, b in zip(seen, seen[1:])), seen  # they alternate


def test_containers_started_together_get_addresses_of_their_own(api):
    import concurrent.futures

    name = f"net-{uuid.uuid4().hex[:6]}"
    assert api.post("/networks/create", {"Name": name}).status == 201
    made = [api.create(["sleep", "60"], HostConfig={"NetworkMode": name}) for _ in range(6)]
    try:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:  # as compose starts a project's services
            assert set(pool.map(lambda c: api.post(f"/containers/{c}/start").status, made)) == {204}
        shown = [api.get_json(f"/containers/{c}/json")["NetworkSettings"]["Networks"][name] for c in made]
        assert len({e["IPAddress"] for e in shown}) == 6 and len({e["MacAddress"] for e in shown}) == 6
    finally:
        for c in made:
            api.remove(c)
        api.delete(f"/networks/{name}")


def test_bridge_options_host_binding_and_mtu(api):
    name = f"net-{uuid.uuid4().hex[:6]}"
    options = {"com.docker.network.bridge.host_binding_ipv4": "127.0.0.1", "com.docker.network.driver.mtu": "1400"}
    assert api.post("/networks/create", {"Name": name, "Options": options, "Attachable": True}).status == 201
    assert api.get_json(f"/networks/{name}")["Attachable"] is True  # kept and shown, as dockerd (compose sets it)
    port = free_port()
    cid = api.run(["sh", "-c", "cat /sys/class/net/eth0/mtu; exec sleep 60"], ExposedPorts={"80/tcp": {}},
                  HostConfig={"NetworkMode": name, "PortBindings": {"80/tcp": [{"HostPort": str(port)}]}})
    try:
        # a port given no address binds where the network says: loopback, not every interface
        ports = api.get_json(f"/containers/{cid}/json")["NetworkSettings"]["Ports"]
        assert ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        deadline = time.time() + 10
        while not (mtu := b"".join(p for _, p in api.logs(cid))) and time.time() < deadline:
            time.sleep(0.05)
        assert mtu == b"1400\n"
    finally:
        api.remove(cid)
        api.delete(f"/networks/{name}")
    for bad in ({"com.docker.network.driver.mtu": "abc"}, {"com.docker.network.bridge.host_binding_ipv4": "x"},
                {"com.docker.network.bridge.enable_icc": "false"}):
        reply = api.post("/networks/create", {"Name": name, "Options": bad})
        assert reply.status == 400 and next(iter(bad)) in reply.message


def test_prune_takes_only_what_its_filters_select(api):
    def make(name: str, **labels) -> None:
        assert api.post("/networks/create", {"Name": name, "Labels": labels}).status == 201

    make("pn-a", p="1")
    make("pn-b")
    make("pn-c", p="2")

    def prune(filters: dict) -> list[str]:
        reply = api.post("/networks/prune", filters=json.dumps(filters))
        assert reply.status == 200, reply.body
        return sorted(reply.json()["NetworksDeleted"] or [])

    assert api.post("/networks/prune", filters='{"bogus":["1"]}').status == 400
    assert prune({"until": ["1h"]}) == []  # made just now
    assert prune({"label": ["p=1"]}) == ["pn-a"]
    assert prune({"label!": ["p"]}) == ["pn-b"]
    assert prune({"label": ["nomatch=1"]}) == []
    assert prune({}) == ["pn-c"]


def test_published_ports(api):
    port = free_port()
    cid = api.run(["sh", "-c", "mkdir /www; echo hello-from-the-box > /www/index.html; exec httpd -f -p 8080 -h /www"],
                  ExposedPorts={"8080/tcp": {}},
                  HostConfig={"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}})
    body = fetch_when_up(f"http://127.0.0.1:{port}/index.html")
    assert body == b"hello-from-the-box\n"
    ports = api.get_json(f"/containers/{cid}/json")["NetworkSettings"]["Ports"]
    assert ports == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    row = next(c for c in api.get_json("/containers/json") if c["Id"] == cid)
    assert row["Ports"] == [{"IP": "127.0.0.1", "PrivatePort": 8080, "PublicPort": port, "Type": "tcp"}]

    clash = api.create(["true"], HostConfig={"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}})
    reply = api.post(f"/containers/{clash}/start")
    assert reply.status >= 400 and "port is already allocated" in reply.message
    assert api.get_json(f"/containers/{clash}/json")["State"]["Status"] == "created"
    api.remove(clash)
    udp = {"PortBindings": {"81/udp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}}  # UDP has its own ports
    first = api.run(["sleep", "60"], ExposedPorts={"81/udp": {}}, HostConfig=udp)
    twin = api.create(["sleep", "60"], ExposedPorts={"81/udp": {}}, HostConfig=udp)
    reply = api.post(f"/containers/{twin}/start")
    assert reply.status >= 400 and "port is already allocated" in reply.message
    api.remove(twin)
    api.remove(first)
    api.remove(cid)
    with socket.socket() as s:  # the port is free again: nothing was left listening
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed connection may linger in TIME_WAIT
        s.bind(("127.0.0.1", port))
        s.listen()


def test_the_images_exposed_ports_and_stop_signal(api, tmp_path):
    """`-P` publishes what the image EXPOSEs, and `stop` sends its STOPSIGNAL, as dockerd's
    merge of the image's config into the container's."""
    import io
    import tarfile

    dockerfile = (b'FROM busybox\nEXPOSE 8080 53/udp\nSTOPSIGNAL SIGUSR1\nCMD ["sh", "-c", '
                  b'"trap \'echo usr1; exit 0\' USR1; mkdir /www; echo exposed > /www/index.html; '
                  b'httpd -p 8080 -h /www; while true; do sleep 0.1; done"]\n')
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    reply = api.request("POST", "/build", query={"t": "exposing:1"}, body=buf.getvalue(),
                        headers={"Content-Type": "application/x-tar"})
    assert reply.status == 200 and b"errorDetail" not in reply.body, reply.body
    cid = api.run([], image="exposing:1", HostConfig={"PublishAllPorts": True})
    try:
        config = api.get_json(f"/containers/{cid}/json")["Config"]
        assert config["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}} and config["StopSignal"] == "SIGUSR1"
        binding = api.get_json(f"/containers/{cid}/json")["NetworkSettings"]["Ports"]["8080/tcp"][0]
        assert fetch_when_up(f"http://127.0.0.1:{binding['HostPort']}/") == b"exposed\n"
        assert api.post(f"/containers/{cid}/stop", t=10).status == 204
        assert api.get_json(f"/containers/{cid}/json")["State"]["ExitCode"] == 0  # its trap ran: USR1, not TERM
        assert b"usr1" in b"".join(data for _, data in api.logs(cid))
    finally:
        api.remove(cid)
        api.delete("/images/exposing:1")


def test_publish_all_exposed_ports(api):
    cid = api.run(["sh", "-c", "mkdir /www; echo any-port > /www/index.html; exec httpd -f -p 8080 -h /www"],
                  ExposedPorts={"8080/tcp": {}}, HostConfig={"PublishAllPorts": True})
    bindings = api.get_json(f"/containers/{cid}/json")["NetworkSettings"]["Ports"]["8080/tcp"]
    port = bindings[0]["HostPort"]
    assert bindings[0]["HostIp"] == "0.0.0.0" and int(port) > 0
    assert fetch_when_up(f"http://127.0.0.1:{port}/") == b"any-port\n"
    if ports.ipv6_host():  # as dockerd: [::] too, on the same port, proxied to the container's IPv4 address
        assert bindings[1] == {"HostIp": "::", "HostPort": port}
        assert fetch_when_up(f"http://[::1]:{port}/") == b"any-port\n"
    api.remove(cid)


@pytest.mark.skipif(not shutil.which("docker"), reason="the docker CLI is not installed")
def test_docker_cli_networks_and_ports(daemon, tmp_path):
    env = {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(tmp_path)}

    def docker(*args: str, check: bool = True) -> str:
        result = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 or not check, result.stderr
        return result.stdout

    name = f"cli-net-{uuid.uuid4().hex[:6]}"
    docker("network", "create", name)
    assert name in docker("network", "ls", "--format", "{{.Name}}").split()
    port = free_port()
    docker("run", "-d", "--name", f"{name}-web", "--network", name, "-p", f"127.0.0.1:{port}:8080", "busybox",
           "sh", "-c", "mkdir /www; echo via-cli > /www/index.html; exec httpd -f -p 8080 -h /www")
    assert docker("port", f"{name}-web").strip() == f"8080/tcp -> 127.0.0.1:{port}"
    assert fetch_when_up(f"http://127.0.0.1:{port}/") == b"via-cli\n"
    assert "via-cli" in docker("run", "--rm", "--network", name, "busybox", "wget", "-qO-", f"http://{name}-web:8080/")
    docker("rm", "-f", f"{name}-web")
    docker("network", "rm", name)
    assert "network nope not found" in subprocess.run(["docker", "run", "--rm", "--network", "nope", "busybox", "true"],
                                                      env=env, capture_output=True, text=True).stderr


def test_berth_cli_networks_and_ports(daemon):
    import sys

    from tests.daemon import REPO

    env = {**os.environ, "BERTH_HOST": daemon.host}

    def berth(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "shell.cli", *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=60)

    name = f"berth-net-{uuid.uuid4().hex[:6]}"
    assert berth("network", "create", "--subnet", "10.91.3.0/24", name).returncode == 0
    assert name in berth("network", "ls", "--format", "{{.Name}}").stdout.split()
    port = free_port()
    assert berth("run", "-d", "--name", name + "-web", "--network", name, "--network-alias", "www",
                 "-p", f"127.0.0.1:{port}:8080", "busybox", "sh", "-c",
                 "mkdir /w; echo berth-cli > /w/index.html; exec httpd -f -p 8080 -h /w").returncode == 0
    assert berth("port", name + "-web").stdout.strip() == f"8080/tcp -> 127.0.0.1:{port}"
    fetched = berth("run", "--rm", "--network", name, "busybox", "wget", "-qO-", "http://www:8080/")
    assert fetched.stdout == "berth-cli\n", fetched.stderr
    assert "10.91.3.2" in berth("network", "inspect", "-f", "{{json .Containers}}", name).stdout
    assert berth("network", "rm", name).returncode == 1  # in use
    berth("rm", "-f", name + "-web")
    assert berth("network", "rm", name).stdout.strip() == name
