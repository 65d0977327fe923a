"""Every HostConfig and Config field of API 1.41: honoured as Docker honours it, or
refused at create (400) with dockerd's words or a reason — never accepted and ignored.

The effects are read from inside containers (rlimits, groups, /etc files, mounts,
namespaces, cgroup files), several settings to a container, through the API, the docker
CLI and berth's CLI. Where the private dockerd of tests/dockerd.py can answer cheaply
(busybox imported from the host's static busybox, `--network none`: it has no bridge),
the same command runs there too and the answers are compared. Nameservers point nowhere
(192.0.2.0/24, TEST-NET-1): resolv.conf is read, never used.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.runtime import cgroups
from tests.api import Api
from tests.test_cli import berth  # noqa: F401 (berth's CLI against the session daemon)
from tests.test_confinement import sections
from tests.test_docker_cli import docker  # noqa: F401 (the docker CLI against the session daemon)
from tests.test_image_archive import dockerd  # noqa: F401 (the module's private dockerd fixture)

needs_cli = pytest.mark.skipif(not shutil.which("docker"), reason="the docker CLI is not installed")
FEATURES = cgroups.features(cgroups.detect())


def create(api, cmd: list[str] | None = None, **fields):
    return api.post("/containers/create", {"Image": "busybox", "Cmd": cmd or ["true"], **fields})


def run_output(api, script: str, **fields) -> str:
    """Run `sh -c script` to its end; its stdout (stderr must be empty)."""
    cid = api.run(["sh", "-c", script], **fields)
    try:
        assert api.wait(cid) == 0, api.logs(cid)
        frames = api.logs(cid)
        assert not [p for s, p in frames if s == 2], frames
        return b"".join(p for s, p in frames if s == 1).decode()
    finally:
        api.remove(cid)


def ns(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{kind}")


def cgroup_dirs(daemon, cid: str) -> list[Path]:
    return [p for p in Path("/sys/fs/cgroup").glob(f"*/{daemon.cgroup_parent}/{cid}") if p.is_dir()]


# --- refused at create, as dockerd refuses -------------------------------------------------

# (Config and HostConfig fields, the message): dockerd 20.10 refuses each with these words
# (some with 500, which berth answers with 400: they are the client's mistake).
AS_DOCKERD = [
    ({"WorkingDir": "rel"}, "the working directory 'rel' is invalid, it needs to be an absolute path"),
    ({"Env": ["=foo"]}, "invalid environment variable: =foo"),
    ({"StopSignal": "NOPE"}, "Invalid signal: NOPE"),
    ({"Healthcheck": {"Test": ["CMD", "true"], "Interval": 5}}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"Healthcheck": {"Test": ["CMD", "true"], "Retries": -1}}, "Retries in Healthcheck cannot be negative"),
    ({"Hostname": "x", "HostConfig": {"UTSMode": "host"}}, "conflicting options: hostname and the UTS mode"),
    ({"MacAddress": "02:42:ac:11:00:02", "HostConfig": {"NetworkMode": "host"}},
     "conflicting options: mac-address and the network mode"),
    ({"HostConfig": {"NetworkMode": "host", "Links": ["x:y"]}},
     "conflicting options: host type networking can't be used with links. This would result in undefined behavior"),
    ({"HostConfig": {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}}},
     "maximum retry count cannot be used with restart policy 'always'"),
    ({"HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}}},
     "maximum retry count cannot be negative"),
    ({"HostConfig": {"Isolation": "hyperv"}}, "Invalid isolation: \"hyperv\" - linux only supports 'default'"),
    ({"HostConfig": {"IOMaximumIOps": 5}}, "Invalid QoS settings: linux does not support configuration of maximum IOPs"),
    ({"HostConfig": {"IOMaximumBandwidth": 5}},
     "Invalid QoS settings: linux does not support configuration of maximum bandwidth"),
    ({"HostConfig": {"CpuRealtimeRuntime": 2000, "CpuRealtimePeriod": 1000}},
     "cpu real-time runtime cannot be higher than cpu real-time period"),
    ({"HostConfig": {"ExtraHosts": ["bad"]}}, 'bad format for add-host: "bad"'),
    ({"HostConfig": {"ExtraHosts": ["h:notip"]}}, 'invalid IP address in add-host: "notip"'),
    ({"HostConfig": {"Memory": 1}}, "Minimum memory limit allowed is 6MB"),
    ({"HostConfig": {"MemorySwap": 10 << 20}}, "You should always set the Memory limit when using Memoryswap limit, see usage"),
    ({"HostConfig": {"Memory": 10 << 20, "MemorySwap": 8 << 20}},
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
    ({"HostConfig": {"MemorySwappiness": 500}}, "Invalid value: 500, valid memory swappiness range is 0-100"),
    ({"HostConfig": {"MemoryReservation": 1}}, "Minimum memory reservation allowed is 6MB"),
    ({"HostConfig": {"Memory": 10 << 20, "MemoryReservation": 20 << 20}},
     "Minimum memory limit can not be less than memory reservation limit, see usage"),
    ({"HostConfig": {"KernelMemory": 1}}, "Minimum kernel memory limit allowed is 6MB"),
    ({"HostConfig": {"NanoCpus": -1}}, f"Range of CPUs is from 0.01 to {os.cpu_count()}.00, as there are only "
                                       f"{os.cpu_count()} CPUs available"),
    ({"HostConfig": {"CpuPeriod": 100}},
     "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    ({"HostConfig": {"CpuQuota": 1}}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
    ({"HostConfig": {"CpusetCpus": "a"}}, "Invalid value a for cpuset cpus: invalid format: a"),
    ({"HostConfig": {"CpusetCpus": "99"}}, f"Requested CPUs are not available - requested 99, available: {FEATURES.cpus}"),
    ({"HostConfig": {"CpusetMems": "9"}},
     f"Requested memory nodes are not available - requested 9, available: {FEATURES.mems}"),
    ({"HostConfig": {"ShmSize": -1}}, "SHM size can not be less than 0"),
    ({"HostConfig": {"OomScoreAdj": 99999}}, "Invalid value 99999, range for oom score adj is [-1000, 1000]"),
    ({"HostConfig": {"Tmpfs": {"rel": ""}}}, "invalid mount path: 'rel' mount path must be absolute"),
    ({"HostConfig": {"Tmpfs": {"/": ""}}}, "invalid specification: destination can't be '/'"),
    ({"HostConfig": {"CgroupnsMode": "weird"}}, "invalid cgroup namespace mode: weird"),
    ({"HostConfig": {"StorageOpt": {"size": "1g"}}}, "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"),
    ({"HostConfig": {"Links": ["hc-nosuch:y"]}}, "could not get container for hc-nosuch: No such container: hc-nosuch"),
    ({"HostConfig": {"VolumesFrom": ["hc-nosuch"]}}, "No such container: hc-nosuch"),
    ({"HostConfig": {"VolumesFrom": ["hc-nosuch:zz"]}}, "invalid mode: zz"),
    ({"HostConfig": {"IpcMode": "container:hc-nosuch"}}, "No such container: hc-nosuch"),
    ({"HostConfig": {"PidMode": "container:hc-nosuch"}}, "No such container: hc-nosuch"),
]

# What dockerd 20.10 takes and then ignores, or lets fail at start; berth refuses at create.
BERTH_REFUSES = [
    ({"HostConfig": {"IpcMode": "weird"}}, "invalid IPC mode: weird"),
    ({"HostConfig": {"PidMode": "weird"}}, "invalid PID mode: weird"),
    ({"HostConfig": {"UTSMode": "container:x"}}, "invalid UTS mode: container:x"),
    ({"HostConfig": {"UsernsMode": "private"}}, "invalid UsernsMode 'private'"),
    ({"HostConfig": {"Cgroup": "container:x"}}, "Cgroup 'container:x'"),
    ({"HostConfig": {"CgroupParent": "mine"}}, "CgroupParent: "),
    ({"HostConfig": {"KernelMemory": 16 << 20}}, "KernelMemory: "),
    ({"HostConfig": {"CpuPercent": 50}}, "CpuPercent: a Windows-only setting"),
    ({"HostConfig": {"CpuCount": 2}}, "CpuCount: a Windows-only setting"),
    ({"HostConfig": {"CpuShares": -5}}, "invalid CPU shares (-5): value must be a positive integer"),
    ({"HostConfig": {"BlkioWeight": 5}}, "Range of blkio weight is from 10 to 1000"),
    ({"HostConfig": {"BlkioDeviceReadBps": [{"Path": "/dev/hc-nosuch", "Rate": 1}]}},
     "stat /dev/hc-nosuch: no such file or directory"),
    ({"HostConfig": {"BlkioDeviceReadBps": [{"Path": "/dev/null", "Rate": 1}]}}, "/dev/null is not a block device"),
    ({"HostConfig": {"CpuRealtimeRuntime": 10**6}}, "CpuRealtimeRuntime 1000000: berth's cgroup parent"),
    ({"HostConfig": {"DeviceRequests": [{"Count": -1, "Capabilities": [["gpu"]]}]}},
     'could not select device driver "" with capabilities: [[gpu]]'),
    ({"HostConfig": {"Devices": [{"PathOnHost": "/dev/hc-nosuch", "PathInContainer": "/dev/x"}]}},
     'error gathering device information while adding custom device "/dev/hc-nosuch": no such file or directory'),
    ({"HostConfig": {"Devices": [{"PathOnHost": "/etc/passwd", "PathInContainer": "/dev/x"}]}},
     'error gathering device information while adding custom device "/etc/passwd": not a device node'),
    ({"HostConfig": {"Devices": [{"PathOnHost": "/dev/null", "CgroupPermissions": "rwx"}]}}, "bad mode specified: rwx"),
    ({"HostConfig": {"DeviceCgroupRules": ["c 1:3"]}}, "invalid device cgroup rule format: 'c 1:3'"),
    ({"HostConfig": {"Sysctls": {"vm.swappiness": "1"}}}, 'sysctl "vm.swappiness" is not in a separate kernel namespace'),
    ({"HostConfig": {"Sysctls": {"kernel.hostname": "x"}}}, 'sysctl "kernel.hostname" is not allowed'),
    ({"HostConfig": {"NetworkMode": "host", "Sysctls": {"net.ipv4.ip_forward": "1"}}},
     'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'),
    ({"HostConfig": {"IpcMode": "host", "Sysctls": {"kernel.shmmax": "1"}}},
     'sysctl "kernel.shmmax" is not allowed in the hosts ipc namespace'),
    ({"HostConfig": {"Ulimits": [{"Name": "nosuch", "Soft": 1, "Hard": 1}]}}, "invalid ulimit type: nosuch"),
    ({"HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 5}]}},
     "ulimit soft limit must be less than or equal to hard limit: 10 > 5"),
    ({"HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": -1}]}}, "ulimit nofile: the hard limit -1 is above"),
    ({"HostConfig": {"Tmpfs": {"/t": "size=1m,bogus"}}}, 'Invalid tmpfs option ["bogus"]'),
    ({"HostConfig": {"SecurityOpt": ["apparmor=docker-default"]}}, "SecurityOpt apparmor=docker-default: "),
    ({"HostConfig": {"SecurityOpt": ["label=type:svirt_t"]}}, "SecurityOpt label=type:svirt_t: "),
    ({"HostConfig": {"SecurityOpt": ["systempaths=unconfined"]}}, 'invalid --security-opt 2: "systempaths=unconfined"'),
    ({"HostConfig": {"LogConfig": {"Type": "syslog"}}}, "logger: no log driver named 'syslog' is registered"),
    ({"HostConfig": {"LogConfig": {"Type": "none", "Config": {"max-size": "1m"}}}},
     "unknown log opt 'max-size' for none log driver"),
    ({"Volumes": {"/v": {}}, "HostConfig": {"VolumeDriver": "nfs"}},
     'error looking up volume plugin nfs: plugin "nfs" not found'),
    ({"HostConfig": {"Dns": ["resolver"]}}, "resolver is not an ip address"),
    ({"HostConfig": {"GroupAdd": ["4294967296"]}}, "GroupAdd '4294967296': uids and gids must be in range"),
    ({"HostConfig": {"ConsoleSize": [24]}}, "ConsoleSize: two sizes are needed"),
    ({"NetworkDisabled": True, "HostConfig": {"NetworkMode": "bridge"}}, "NetworkDisabled: set NetworkMode"),
    ({"MacAddress": "02:42:ac:11:00"}, "invalid MAC address: 02:42:ac:11:00"),
    ({"Domainname": "x.example", "HostConfig": {"UTSMode": "host"}}, "conflicting options: domainname and the UTS mode"),
]
if FEATURES.blkio_weight:
    BERTH_REFUSES.append(({"HostConfig": {"BlkioWeight": 2000}}, "Range of blkio weight is from 10 to 1000"))
else:  # dockerd drops the weight with a warning on such a host; berth says why it cannot
    BERTH_REFUSES.append(({"HostConfig": {"BlkioWeight": 500}}, "BlkioWeight: this host has no proportional block I/O"))


def _body(fields: dict) -> dict:
    body = {k: v for k, v in fields.items() if k != "HostConfig"}
    return {"Image": "busybox", "Cmd": ["true"], **body,
            "HostConfig": {"NetworkMode": "none", **fields.get("HostConfig", {})}}


def test_refused_at_create(api):
    for fields, message in AS_DOCKERD + BERTH_REFUSES:
        reply = api.post("/containers/create", _body(fields))
        assert reply.status == 400, (fields, reply.status, reply.body)
        assert reply.message.startswith(message), (fields, reply.message)


def test_refusals_match_dockerd(api, docker_ref):
    """The same requests to the private dockerd: refused with the same words (its status
    is 500 for some of them, 400 for most)."""
    for fields, message in AS_DOCKERD:
        theirs = docker_ref.api.post("/containers/create", _body(fields))
        assert theirs.status in (400, 500) and theirs.message == message, (fields, theirs.status, theirs.body)


def test_out_of_range_starts_never_happen_and_failed_starts_leave_no_cgroup(api, daemon):
    """The values the issue measured passing create are refused there now; a start that
    still fails (a sysctl the kernel has not, a group the image has not) leaves no cgroup."""
    for hc in ({"NanoCpus": -1}, {"ShmSize": -1}, {"OomScoreAdj": 99999}, {"MemorySwappiness": 500}, {"CpuQuota": 1}):
        assert create(api, HostConfig=hc).status == 400, hc
    for hc in ({"Sysctls": {"net.ipv4.hc_nosuch": "1"}}, {"GroupAdd": ["hc-nosuch-group"]}):
        reply = create(api, HostConfig=hc)
        assert reply.status == 201, reply.body
        cid = reply.json()["Id"]
        started = api.post(f"/containers/{cid}/start")
        assert started.status == 400, started.body
        assert not cgroup_dirs(daemon, cid)
        assert api.delete(f"/containers/{cid}", force=1).status == 204
        assert not cgroup_dirs(daemon, cid)


# --- honoured: what a container sees ------------------------------------------------------

PROBE = r"""
echo --tmpfs; mount | grep -E ' /(t|u|dev/shm) ' | sort
echo --mode; stat -c %a /t
echo --ulimit; ulimit -Sn; ulimit -Hn; ulimit -c
echo --groups; grep Groups /proc/self/status
echo --resolv; cat /etc/resolv.conf
echo --hosts; grep -v -e '^127.0.1.1' /etc/hosts
echo --names; hostname; cat /proc/sys/kernel/domainname
echo --oom; cat /proc/self/oom_score_adj
echo --sysctl; cat /proc/sys/kernel/shm_rmid_forced /proc/sys/net/ipv4/ip_unprivileged_port_start
echo --caps; grep CapEff /proc/self/status
echo --readonly; touch /x 2>&1 || true
echo --device; stat -c '%F %t,%T' /dev/myfuse
echo --pidns; readlink /proc/self/ns/pid
"""
# the same settings as docker flags, and as the API's fields
FLAGS = ["--network", "none", "--tmpfs", "/t:size=1m,mode=700", "--tmpfs", "/u", "--ulimit", "nofile=100:200",
         "--ulimit", "core=-1", "--group-add", "10", "--group-add", "1234", "--dns", "192.0.2.1", "--dns-search",
         "example.org", "--dns-option", "ndots:2", "--add-host", "h1:192.0.2.2", "--add-host", "h6:2001:db8::1",
         "--domainname", "dom.example", "-h", "hh", "--oom-score-adj", "7", "--shm-size", "2m", "--sysctl",
         "kernel.shm_rmid_forced=1", "--sysctl", "net.ipv4.ip_unprivileged_port_start=500", "--cap-drop", "ALL",
         "--cap-add", "CHOWN", "--read-only", "--device", "/dev/fuse:/dev/myfuse:r", "--pid", "host"]
FIELDS = {"Hostname": "hh", "Domainname": "dom.example", "HostConfig": {
    "NetworkMode": "none", "Tmpfs": {"/t": "size=1m,mode=700", "/u": ""},
    "Ulimits": [{"Name": "nofile", "Soft": 100, "Hard": 200}, {"Name": "core", "Soft": -1, "Hard": -1}],
    "GroupAdd": ["10", "1234"], "Dns": ["192.0.2.1"], "DnsSearch": ["example.org"], "DnsOptions": ["ndots:2"],
    "ExtraHosts": ["h1:192.0.2.2", "h6:2001:db8::1"], "OomScoreAdj": 7, "ShmSize": 2 << 20,
    "Sysctls": {"kernel.shm_rmid_forced": "1", "net.ipv4.ip_unprivileged_port_start": "500"},
    "CapDrop": ["ALL"], "CapAdd": ["CHOWN"], "ReadonlyRootfs": True, "PidMode": "host",
    "Devices": [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/myfuse", "CgroupPermissions": "r"}]}}


def check_probe(view: dict[str, list[str]]) -> None:
    assert view["tmpfs"] == ["shm on /dev/shm type tmpfs (rw,nosuid,nodev,noexec,relatime,size=2048k)",
                             "tmpfs on /t type tmpfs (rw,nosuid,nodev,noexec,relatime,size=1024k,mode=700)",
                             "tmpfs on /u type tmpfs (rw,nosuid,nodev,noexec,relatime)"]
    assert view["mode"] == ["700"] and view["ulimit"] == ["100", "200", "unlimited"]
    assert view["groups"] == ["Groups:\t0 10 1234 "]
    assert view["resolv"] == ["search example.org", "nameserver 192.0.2.1", "options ndots:2"]
    assert view["hosts"][-2:] == ["192.0.2.2\th1", "2001:db8::1\th6"]
    assert view["names"] == ["hh", "dom.example"] and view["oom"] == ["7"] and view["sysctl"] == ["1", "500"]
    assert view["caps"] == ["CapEff:\t0000000000000001"]
    assert view["readonly"] == ["touch: /x: Read-only file system"]
    assert view["device"] == ["character special file a,e5"]
    assert view["pidns"] == [ns("pid")]


def test_settings_through_the_api(api):
    view = sections(run_output(api, PROBE, **FIELDS))
    check_probe(view)


@needs_cli
def test_settings_through_the_docker_cli_as_in_docker(docker, docker_ref):
    ours = docker("run", "--rm", *FLAGS, "busybox", "sh", "-c", PROBE).stdout.decode()
    theirs = docker_ref.docker("run", "--rm", *FLAGS, "busybox", "sh", "-c", PROBE).stdout.decode()
    check_probe(sections(ours))
    assert ours == theirs


def test_settings_through_berth(berth):
    result = berth("run", "--rm", *FLAGS, "busybox", "sh", "-c", PROBE)
    assert result.returncode == 0, result.stderr
    check_probe(sections(result.stdout.decode()))


def test_namespaces_of_the_host_and_private(api):
    script = "for n in pid ipc uts cgroup; do readlink /proc/self/ns/$n; done; hostname; mount | grep -c ' /dev/shm '; true"
    shared = run_output(api, script, HostConfig={"NetworkMode": "none", "PidMode": "host", "IpcMode": "host",
                                                 "UTSMode": "host", "CgroupnsMode": "private"}).split("\n")
    assert shared[:3] == [ns("pid"), ns("ipc"), ns("uts")] and shared[3] != ns("cgroup")
    assert shared[4] == os.uname().nodename
    own = run_output(api, script, HostConfig={"NetworkMode": "none", "IpcMode": "none"}).split("\n")
    assert own[0] != ns("pid") and own[1] != ns("ipc") and own[2] != ns("uts") and own[3] == ns("cgroup")
    assert own[5] == "0"  # --ipc none: no /dev/shm


def test_joining_another_containers_namespaces(api):
    donor = api.run(["sh", "-c", "echo shared > /dev/shm/marker; sleep 60"], name="hc-donor",
                    HostConfig={"NetworkMode": "none", "IpcMode": "shareable", "ShmSize": 3 << 20})
    private = api.run(["sleep", "60"], name="hc-private", HostConfig={"NetworkMode": "none"})
    stopped = api.create(["true"], name="hc-stopped", HostConfig={"NetworkMode": "none", "IpcMode": "shareable"})
    try:
        inspect = api.get_json("/containers/hc-donor/json")
        assert inspect["HostConfig"]["IpcMode"] == "shareable"
        pid = inspect["State"]["Pid"]
        mine = run_output(api, "readlink /proc/self/ns/ipc; readlink /proc/self/ns/pid; cat /dev/shm/marker; "
                               "df -k /dev/shm | tail -1 | awk '{print $2}'; ps -o args | grep -c '^sleep 60'",
                          HostConfig={"NetworkMode": "none", "IpcMode": "container:hc-donor",
                                      "PidMode": "container:hc-donor"}).split()
        assert mine == [os.readlink(f"/proc/{pid}/ns/ipc"), os.readlink(f"/proc/{pid}/ns/pid"), "shared", "3072", "1"]
        joiner = api.create(["true"], HostConfig={"NetworkMode": "none", "IpcMode": "container:hc-donor"})
        assert api.get_json(f"/containers/{joiner}/json")["HostConfig"]["IpcMode"] == f"container:{donor}"
        api.remove(joiner)
        for hc, status, message in (
                ({"IpcMode": "container:hc-private"}, 400, f"can't join IPC of container {private}: non-shareable IPC"),
                ({"IpcMode": "container:hc-stopped"}, 409, f"cannot join IPC of a non running container: {stopped}"),
                ({"PidMode": "container:hc-stopped"}, 409, f"cannot join PID of a non running container: {stopped}")):
            cid = api.create(["true"], HostConfig={"NetworkMode": "none", "AutoRemove": True, **hc})
            reply = api.post(f"/containers/{cid}/start")
            assert (reply.status, reply.message.split(" (hint")[0]) == (status, message)
            api.post(f"/containers/{cid}/wait", condition="removed")
            assert api.get(f"/containers/{cid}/json").status == 404  # AutoRemove still applies
    finally:
        for cid in (donor, private, stopped):
            api.remove(cid)


def test_cgroup_limits(api, daemon):
    script = ("cd /sys/fs/cgroup; cat memory/memory.limit_in_bytes memory/memory.soft_limit_in_bytes "
              "memory/memory.swappiness cpuset/cpuset.cpus cpuset/cpuset.mems cpu/cpu.cfs_period_us cpu/cpu.cfs_quota_us "
              "blkio/blkio.throttle.read_bps_device blkio/blkio.throttle.write_iops_device "
              "memory/memory.kmem.tcp.limit_in_bytes; grep oom_kill_disable memory/memory.oom_control")
    if cgroups.detect().version != 1:
        pytest.skip("the cgroup v1 files are read here")
    cpu = FEATURES.cpus.split(",")[0].split("-")[-1]
    out = run_output(api, script, HostConfig={
        "NetworkMode": "none", "Memory": 64 << 20, "MemoryReservation": 32 << 20, "MemorySwappiness": 10,
        "OomKillDisable": True, "CpusetCpus": cpu, "CpusetMems": "0", "CpuPeriod": 50000, "CpuQuota": 25000,
        "BlkioDeviceReadBps": [{"Path": "/dev/loop0", "Rate": 1 << 20}],
        "BlkioDeviceWriteIOps": [{"Path": "/dev/loop0", "Rate": 100}], "KernelMemoryTCP": 16 << 20})
    loop = os.stat("/dev/loop0").st_rdev
    device = f"{os.major(loop)}:{os.minor(loop)}"
    assert out.splitlines() == [str(64 << 20), str(32 << 20), "10", cpu, "0", "50000", "25000", f"{device} 1048576",
                                f"{device} 100", str(16 << 20), "oom_kill_disable 1"]
    # real time: within the budget the daemon's cgroup parent is given (here, by the test)
    parent = Path("/sys/fs/cgroup/cpu") / daemon.cgroup_parent / "cpu.rt_runtime_us"
    if not FEATURES.realtime or not parent.exists():
        return
    parent.write_text("20000")
    try:
        out = run_output(api, "cat /sys/fs/cgroup/cpu/cpu.rt_runtime_us /sys/fs/cgroup/cpu/cpu.rt_period_us",
                         HostConfig={"NetworkMode": "none", "CpuRealtimeRuntime": 10000, "CpuRealtimePeriod": 1000000})
        assert out.split() == ["10000", "1000000"]
        reply = create(api, HostConfig={"CpuRealtimeRuntime": 30000})
        assert reply.status == 400 and "real-time budget of 20000" in reply.message
    finally:  # the kernel frees a removed cgroup's budget a moment later: until then the parent keeps it
        deadline = time.monotonic() + 5
        while True:
            try:
                parent.write_text("0")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def test_memory_swap_defaults_to_twice_the_limit(api, daemon):
    """As dockerd: Memory alone allows as much swap again; an update that raises Memory past
    the swap limit must raise MemorySwap too."""
    if not FEATURES.swap or cgroups.detect().version != 1:
        pytest.skip("memory+swap accounting (v1 memsw) is read here")
    cid = api.run(["sleep", "60"], HostConfig={"NetworkMode": "none", "Memory": 32 << 20})
    try:
        assert api.get_json(f"/containers/{cid}/json")["HostConfig"]["MemorySwap"] == 64 << 20
        memsw = Path("/sys/fs/cgroup/memory") / daemon.cgroup_parent / cid / "memory.memsw.limit_in_bytes"
        assert memsw.read_text().strip() == str(64 << 20)
        reply = api.post(f"/containers/{cid}/update", {"Memory": 128 << 20})
        assert (reply.status, reply.message) == (409, "Memory limit should be smaller than already set memoryswap "
                                                      "limit, update the memoryswap at the same time")
        assert api.post(f"/containers/{cid}/update", {"Memory": 128 << 20, "MemorySwap": 256 << 20}).status == 200
        assert memsw.read_text().strip() == str(256 << 20)
    finally:
        api.remove(cid)


def test_inspect_shows_dockers_defaults_and_the_settings(api):
    cid = api.create(["true"], HostConfig={"NetworkMode": "none", "MemorySwappiness": -1, "PidsLimit": 0})
    try:
        hc = api.get_json(f"/containers/{cid}/json")["HostConfig"]
        assert (hc["IpcMode"], hc["ShmSize"], hc["OomKillDisable"], hc["MemorySwappiness"], hc["PidsLimit"]) == \
            ("private", 64 << 20, False, None, None)
        assert hc["CgroupnsMode"] == ("host" if cgroups.detect().version == 1 else "private")
        assert "/proc/kcore" in hc["MaskedPaths"] and "/proc/sys" in hc["ReadonlyPaths"]
        for key in ("Devices", "Ulimits", "Sysctls", "Tmpfs", "DeviceCgroupRules", "BlkioDeviceReadBps", "UsernsMode",
                    "Isolation", "VolumesFrom", "Links", "GroupAdd", "DnsSearch", "CpuRealtimeRuntime", "KernelMemoryTCP",
                    "IOMaximumIOps", "ContainerIDFile", "ConsoleSize"):
            assert key in hc, key
    finally:
        api.remove(cid)


def test_masked_and_readonly_paths(api):
    """MaskedPaths and ReadonlyPaths replace Docker's lists ([] for none: what the docker
    CLI sends for `--security-opt systempaths=unconfined`)."""
    script = "for p in keys timer_list sys; do grep -c \" /proc/$p \" /proc/mounts; done; true"
    unconfined = {"NetworkMode": "none", "MaskedPaths": [], "ReadonlyPaths": []}
    assert run_output(api, script, HostConfig=unconfined).split() == ["0", "0", "0"]
    assert run_output(api, script, HostConfig={"NetworkMode": "none", "MaskedPaths": ["/proc/timer_list"]}).split() == \
        ["0", "1", "1"]
    assert run_output(api, script, HostConfig={"NetworkMode": "none"}).split() == ["1", "1", "1"]


def test_links_hosts_and_their_addresses(api):
    child = api.run(["sleep", "60"], name="hc-web", Hostname="webhost")
    try:
        bridge = api.get_json("/containers/hc-web/json")["NetworkSettings"]["Networks"]["bridge"]
        ip, gateway = bridge["IPAddress"], bridge["Gateway"]
        cid = api.create(["sh", "-c", "grep -v -e localhost -e ip6- /etc/hosts"], name="hc-linker",
                         HostConfig={"Links": ["hc-web:db", "hc-web"], "ExtraHosts": ["gw:host-gateway"]})
        assert api.get_json(f"/containers/{cid}/json")["HostConfig"]["Links"] == ["/hc-web:/hc-linker/db",
                                                                                  "/hc-web:/hc-linker/hc-web"]
        assert api.post(f"/containers/{cid}/start").status == 204
        api.wait(cid)
        lines = b"".join(p for _, p in api.logs(cid)).decode().splitlines()
        assert lines[:3] == [f"{gateway}\tgw", f"{ip}\tdb webhost hc-web", f"{ip}\thc-web webhost"]
        api.post("/containers/hc-web/rename", name="hc-web2")
        assert api.get_json(f"/containers/{cid}/json")["HostConfig"]["Links"][0] == "/hc-web2:/hc-linker/db"
        api.post("/containers/hc-web2/kill")
        api.wait(child)
        reply = api.post(f"/containers/{cid}/start")
        assert (reply.status, reply.message) == (409, "Cannot link to a non running container: /hc-web2 AS /hc-linker/db")
        assert create(api, HostConfig={"NetworkMode": "none", "Links": ["hc-web2"]}).message.startswith(
            "Links: legacy links work on the default bridge network only")
        api.remove(cid)
    finally:
        api.remove(child)


def test_volumes_from(api):
    source = api.create(["true"], name="hc-data", HostConfig={"NetworkMode": "none", "Binds": ["hc-named:/named"]},
                        Volumes={"/anon": {}})
    try:
        api.post(f"/containers/{source}/start")
        api.wait(source)
        out = run_output(api, "echo x > /anon/f && echo y > /named/g && echo written",
                         HostConfig={"NetworkMode": "none", "VolumesFrom": ["hc-data"]})
        assert out == "written\n"
        script = "cat /anon/f /named/g; touch /anon/z 2>&1 | grep -c Read-only"
        assert run_output(api, script, HostConfig={"NetworkMode": "none", "VolumesFrom": ["hc-data:ro"]}).split() == \
            ["x", "y", "1"]
        # a bind of the same destination replaces the inherited mount
        cid = api.create(["true"], HostConfig={"NetworkMode": "none", "VolumesFrom": ["hc-data"], "Tmpfs": {"/t": ""},
                                               "Binds": ["hc-other:/named"]})
        mounts = {m["Destination"]: m for m in api.get_json(f"/containers/{cid}/json")["Mounts"]}
        assert mounts["/named"]["Name"] == "hc-other" and mounts["/anon"]["RW"] and set(mounts) == {"/named", "/anon"}
        api.remove(cid)
        reply = create(api, HostConfig={"NetworkMode": "none", "Tmpfs": {"/x": ""}, "Binds": ["hc-x:/x"]})
        assert (reply.status, reply.message) == (400, "Duplicate mount point: /x")
    finally:
        api.delete(f"/containers/{source}", force=1, v=1)
        for name in ("hc-named", "hc-other"):
            api.delete(f"/volumes/{name}")
    assert api.get("/volumes/hc-named").status == 404


def test_log_driver_none(api):
    cid = api.run(["echo", "hello"], HostConfig={"NetworkMode": "none", "LogConfig": {"Type": "none"}})
    try:
        assert api.wait(cid) == 0
        hc = api.get_json(f"/containers/{cid}/json")["HostConfig"]
        assert hc["LogConfig"] == {"Type": "none", "Config": {}}
        reply = api.get(f"/containers/{cid}/logs", stdout=1)
        assert (reply.status, reply.message) == (400, "configured logging driver does not support reading")
    finally:
        api.remove(cid)


def test_console_size_and_stop_settings(api):
    cid = api.create(["sh", "-c", "sleep 0.2; stty -F /dev/console size"], Tty=True, StopSignal="SIGUSR1",
                     StopTimeout=3, HostConfig={"NetworkMode": "none", "ConsoleSize": [33, 99]})
    try:
        api.post(f"/containers/{cid}/start")
        api.wait(cid)
        assert api.get(f"/containers/{cid}/logs", stdout=1).body == b"33 99\r\n"
        config = api.get_json(f"/containers/{cid}/json")["Config"]
        assert (config["StopSignal"], config["StopTimeout"]) == ("SIGUSR1", 3)
    finally:
        api.remove(cid)


# --- the clients ---------------------------------------------------------------------------------


@needs_cli
def test_docker_cli_namespaces_links_volumes(docker):
    docker("run", "-d", "--name", "hc-cli-web", "-h", "web", "--ipc", "shareable", "-v", "/data", "busybox", "sh",
               "-c", "echo d > /data/f; echo s > /dev/shm/s; sleep 60")
    try:
        out = docker("run", "--rm", "--link", "hc-cli-web:db", "--volumes-from", "hc-cli-web:ro", "--ipc",
                         "container:hc-cli-web", "--pid", "container:hc-cli-web", "--uts", "host", "--cgroupns",
                         "private", "--userns", "host", "--security-opt", "no-new-privileges", "--oom-kill-disable",
                         "--memory-reservation", "32m", "--cpuset-cpus", FEATURES.cpus.split(",")[0].split("-")[0],
                         "busybox", "sh", "-c", "grep -c 'db web hc-cli-web$' /etc/hosts; cat /data/f /dev/shm/s; "
                         "ps -o args | grep -c '^sleep 60'; hostname; grep NoNewPrivs /proc/self/status").stdout.decode()
        assert out.split("\n")[:6] == ["1", "d", "s", "1", os.uname().nodename, "NoNewPrivs:\t1"]
        err = docker("run", "--rm", "--network", "host", "--sysctl", "net.ipv4.ip_forward=1", "busybox", "true",
                         check=False)
        assert err.returncode == 125 and b'sysctl "net.ipv4.ip_forward" not allowed in host network namespace' in err.stderr
    finally:
        docker("rm", "-f", "-v", "hc-cli-web")


def test_berth_cli_namespaces_links_volumes(berth):
    assert berth("run", "-d", "--name", "hc-b-web", "-h", "web", "--ipc", "shareable", "-v", "/data", "busybox",
                     "sh", "-c", "echo d > /data/f; echo s > /dev/shm/s; sleep 60").returncode == 0
    try:
        result = berth("run", "--rm", "--link", "hc-b-web:db", "--volumes-from", "hc-b-web:ro", "--ipc",
                           "container:hc-b-web", "--pid", "container:hc-b-web", "--uts", "host", "--privileged",
                           "--oom-kill-disable", "--memory-swap", "-1", "-m", "64m", "--security-opt",
                           "systempaths=unconfined", "--log-driver", "none", "--stop-signal", "SIGUSR1",
                           "busybox", "sh", "-c", "grep -c 'db web hc-b-web$' /etc/hosts; cat /data/f /dev/shm/s; "
                           "ps -o args | grep -c '^sleep 60'; hostname; grep CapEff /proc/self/status")
        assert result.returncode == 0, result.stderr
        assert result.stdout.decode().split("\n")[:5] == ["1", "d", "s", "1", os.uname().nodename]
        err = berth("run", "--rm", "--ulimit", "nofile=10:5", "busybox", "true")
        assert err.returncode == 125 and b"ulimit soft limit must be less than or equal to hard limit: 10 > 5" in err.stderr
        err = berth("run", "--rm", "--oom-score-adj", "5000", "busybox", "true")
        assert err.returncode == 125 and b"range for oom score adj is [-1000, 1000]" in err.stderr
    finally:
        berth("rm", "-f", "-v", "hc-b-web")


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docker_ref(dockerd):  # noqa: F811 (the fixture imported above)
    """The private dockerd with busybox imported: its CLI (`docker`) and a raw API client (`api`)."""
    if not shutil.which("docker"):
        pytest.skip("the docker CLI is not installed")
    dockerd.import_busybox("busybox:latest")
    return SimpleNamespace(docker=dockerd.docker, api=Api(str(dockerd.sock)))
