"""The pieces of HostConfig handling alone: tmpfs options, sysctls, ulimits, device rules,
cgroup features and cpuset lists, mount planning with --volumes-from and --tmpfs, link
specs, and the CLI's reading of docker's flag values."""

from __future__ import annotations

import os

import pytest

from engine.containers import checks, mounts
from engine.errors import BadRequest
from engine.models import DeviceMapping, HostConfig, MountPoint, Ulimit
from engine.runtime import bundle, cgroups
from shell import grammar
from shell.commands import container_options, containers


def test_tmpfs_options_merge_as_docker():
    assert bundle.tmpfs_options("") == ["noexec", "nosuid", "nodev", "rprivate"]
    assert bundle.tmpfs_options("size=1m,mode=700,exec,size=2m") == ["nosuid", "nodev", "rprivate", "mode=700", "exec",
                                                                     "size=2m"]
    assert bundle.tmpfs_options("shared,ro") == ["noexec", "nosuid", "nodev", "shared", "ro"]
    for bad, shown in (("bogus", '["bogus"]'), ("color=red", '["color" "red"]')):
        with pytest.raises(BadRequest) as err:
            bundle.tmpfs_options(bad)
        assert err.value.message == f"Invalid tmpfs option {shown}"


def test_sysctls_only_in_the_containers_own_namespaces():
    private, host_net, host_ipc = HostConfig(), HostConfig(network_mode="host"), HostConfig(ipc_mode="host")
    for key in ("kernel.shmmax", "kernel.msgmnb", "kernel.sem", "fs.mqueue.msg_max", "net.ipv4.ip_forward"):
        assert bundle.sysctl_problem(key, private) == ""
    assert "not allowed in host network namespace" in bundle.sysctl_problem("net.core.somaxconn", host_net)
    assert bundle.sysctl_problem("kernel.shmmax", host_net) == ""
    assert "hosts ipc namespace" in bundle.sysctl_problem("fs.mqueue.msg_max", host_ipc)
    assert "not in a separate kernel namespace" in bundle.sysctl_problem("vm.overcommit_memory", private)
    assert "Domainname" in bundle.sysctl_problem("kernel.domainname", private)


def test_rlimits():
    limits = {r["type"]: (r["soft"], r["hard"]) for r in bundle.rlimits(HostConfig(ulimits=[
        Ulimit(name="nofile", soft=10, hard=20), Ulimit(name="core", soft=-1, hard=-1),
        Ulimit(name="nproc", soft=5, hard=-1)]))}
    assert limits == {"RLIMIT_NOFILE": (10, 20), "RLIMIT_CORE": (bundle.RLIM_INFINITY,) * 2,
                      "RLIMIT_NPROC": (5, bundle.RLIM_INFINITY)}
    assert "RLIMIT_NOFILE" in {r["type"] for r in bundle.rlimits(HostConfig())}  # the daemon's, by default
    with pytest.raises(BadRequest, match="soft limit must be less than or equal to hard limit: -1 > 5"):
        bundle.rlimits(HostConfig(ulimits=[Ulimit(name="stack", soft=-1, hard=5)]))
    with pytest.raises(BadRequest, match="invalid ulimit stack: -2"):
        bundle.rlimits(HostConfig(ulimits=[Ulimit(name="stack", soft=-2, hard=5)]))


def test_device_nodes_and_rules():
    null = os.stat("/dev/null")
    nodes = bundle.device_nodes(DeviceMapping(path_on_host="/dev/null", path_in_container="/dev/mine",
                                              cgroup_permissions="rw"))
    assert nodes == [{"path": "/dev/mine", "type": "c", "major": os.major(null.st_rdev), "minor": os.minor(null.st_rdev),
                      "fileMode": null.st_mode & 0o7777, "uid": 0, "gid": 0}]
    rules = bundle.device_rules(HostConfig(devices=[DeviceMapping(path_on_host="/dev/null", cgroup_permissions="rw")],
                                           device_cgroup_rules=["c 1:* r", "b *:* m"]))
    assert rules[-3:] == [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                          {"allow": True, "type": "c", "major": 1, "minor": -1, "access": "r"},
                          {"allow": True, "type": "b", "major": -1, "minor": -1, "access": "m"}]
    assert bundle.device_rules(HostConfig(privileged=True, device_cgroup_rules=["bad"])) == [{"allow": True, "access": "rwm"}]
    with pytest.raises(BadRequest, match="is not an absolute path"):
        bundle.device_nodes(DeviceMapping(path_on_host="/dev/null", path_in_container="dev/x"))


def test_cgroup_features_and_cpuset_lists(tmp_path):
    for name, text in (("cpuset/cpuset.effective_cpus", "0-3\n"), ("cpuset/cpuset.effective_mems", "0\n"),
                       ("cpu/cpu.rt_runtime_us", "0"), ("blkio/blkio.throttle.read_bps_device", ""),
                       ("memory/memory.swappiness", "60")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = cgroups.features(cgroups.Layout(1, ()), tmp_path)
    assert (found.cpus, found.mems, found.realtime, found.blkio_weight, found.blkio_throttle, found.swap,
            found.swappiness, found.oom_kill_disable) == ("0-3", "0", True, False, True, False, True, False)
    assert cgroups.parse_list("0-2,5") == {0, 1, 2, 5} and cgroups.parse_list("") == set()
    assert cgroups.parse_list("2-1") is None and cgroups.parse_list("a") is None


def test_resources_as_dockerd_maps_them():
    record = type("R", (), {"host_config": HostConfig(
        memory=64 << 20, memory_swap=-1, memory_reservation=32 << 20, memory_swappiness=0, oom_kill_disable=True,
        nano_cpus=500_000_000, cpu_shares=512, cpuset_cpus="0", cpu_realtime_runtime=1000)})()
    res = bundle.resources(record)
    assert res["memory"] == {"limit": 64 << 20, "swap": -1, "reservation": 32 << 20, "disableOOMKiller": True,
                             "swappiness": 0}
    assert res["cpu"] == {"period": 100_000, "quota": 50_000, "shares": 512, "realtimeRuntime": 1000, "cpus": "0"}
    assert "blockIO" not in res and "pids" not in res


def test_plan_with_volumes_from_and_tmpfs():
    data = lambda name: f"/v/{name}/_data"  # noqa: E731
    inherited = [MountPoint(type="volume", destination="/a", name="va", source=data("va")),
                 MountPoint(type="volume", destination="/b", name="vb", source=data("vb")),
                 MountPoint(type="volume", destination="/t", name="vt", source=data("vt"))]
    planned = mounts.plan(["own:/b"], None, ["/c", "/a"], data, tmpfs=["/t"], inherited=inherited)
    assert [(m.destination, m.name) for m, _ in planned] == [("/a", "va"), ("/b", "own"), ("/c", planned[2][0].name)]
    with pytest.raises(BadRequest, match="Duplicate mount point: /t"):
        mounts.plan(["/h:/t"], None, [], data, tmpfs=["/t"])
    assert mounts.valid_mode("ro,rprivate") and not mounts.valid_mode("zz")


def test_link_specs():
    assert checks.parse_link("web") == ("web", "web")
    assert checks.parse_link("web:db") == ("web", "db")
    assert checks.parse_link("/web:/app/db") == ("web", "db")
    for bad in ("", "a:b:c"):
        with pytest.raises(BadRequest):
            checks.parse_link(bad)


def parse_run(*words: str) -> dict:
    _, args = grammar.parse({c.name: c for c in containers.COMMANDS}, ["run", *words, "busybox"])
    return container_options.create_body(args)


def test_cli_reads_dockers_values(tmp_path):
    assert container_options.device("/dev/fuse") == {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse",
                                                     "CgroupPermissions": "rwm"}
    assert container_options.device("/dev/fuse:r")["CgroupPermissions"] == "r"
    assert container_options.device("/dev/fuse:/dev/f:rw")["PathInContainer"] == "/dev/f"
    with pytest.raises(grammar.UsageError, match="bad mode specified: rwx"):
        container_options.device("/dev/fuse:/dev/f:rwx")
    assert container_options.ulimit("nofile=10:20") == {"Name": "nofile", "Soft": 10, "Hard": 20}
    assert container_options.ulimit("core=-1") == {"Name": "core", "Soft": -1, "Hard": -1}
    with pytest.raises(grammar.UsageError):
        container_options.ulimit("nofile")
    profile = tmp_path / "p.json"
    profile.write_text('{\n  "defaultAction": "SCMP_ACT_ALLOW"\n}\n')
    host = parse_run("--security-opt", f"seccomp={profile}", "--security-opt", "systempaths=unconfined",
                     "--security-opt", "no-new-privileges")["HostConfig"]
    assert host["SecurityOpt"] == ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}', "no-new-privileges"]
    assert host["MaskedPaths"] == host["ReadonlyPaths"] == []
    body = parse_run("--tmpfs", "/t:size=1m", "--tmpfs", "/u", "--sysctl", "net.core.somaxconn=10", "--memory-swap",
                     "-1", "--oom-score-adj", "-5", "--device-read-bps", "/dev/sda:1mb", "--device-write-iops",
                     "/dev/sda:100", "--log-driver", "none", "--domainname", "d.example", "--stop-timeout", "3")
    host = body["HostConfig"]
    assert host["Tmpfs"] == {"/t": "size=1m", "/u": ""} and host["Sysctls"] == {"net.core.somaxconn": "10"}
    assert (host["MemorySwap"], host["OomScoreAdj"]) == (-1, -5)
    assert host["BlkioDeviceReadBps"] == [{"Path": "/dev/sda", "Rate": 1 << 20}]
    assert host["BlkioDeviceWriteIOps"] == [{"Path": "/dev/sda", "Rate": 100}]
    assert host["LogConfig"] == {"Type": "none", "Config": {}}
    assert (body["Domainname"], body["StopTimeout"]) == ("d.example", 3)
