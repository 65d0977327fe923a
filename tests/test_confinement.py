"""Docker's default confinement, side by side: what a container sees in berth and in a
private Docker 20.10 on this machine (capabilities, seccomp, NoNewPrivs, /dev, mounts,
masked and read-only paths, ulimits), then what each option changes, then the pieces
alone: the profile's conversion, the capability rules, `--security-opt` parsing, and the
BPF program berth hands crun, byte for byte the one crun compiles itself.

Docker's view is recorded here, from the private dockerd of tests/dockerd.py (busybox
imported from the host's static busybox: nothing is pulled). Known, deliberate
differences are named where they are allowed for:
- crun (berth's default runtime) creates /dev/core → /proc/kcore even where the host has
  no /proc/kcore; runc (Docker's) does not, so berth on runc matches Docker exactly.
- berth masks what Docker added after 20.10 (/proc/interrupts, powercap, thermal_throttle).
- `--privileged` fails in Docker here (capset: this host's bounding set lacks
  CAP_SYS_RESOURCE); berth gives what the bounding set holds.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.errors import BadRequest
from engine.images import busybox
from engine.runtime import bundle, capabilities, cgroups, seccomp, security
from tests.test_image_archive import dockerd  # noqa: F401 (the module's private dockerd fixture)

RUNTIMES = ["crun", "runc"]
DOCKER_20_10_MASKED = {"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                       "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"}
BERTH_ONLY_MASKED = set(bundle.masked_paths()) - DOCKER_20_10_MASKED
ISSUE_MASKED = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/acpi", "/proc/scsi",
                "/sys/firmware"]
needs_cli = pytest.mark.skipif(not shutil.which("docker"), reason="the docker CLI is not installed")

# One script, run in both engines; each section starts with a line `--name`.
PROBE = r"""
echo --status; grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status
echo --dev; cd /dev && for f in * .*; do [ "$f" = . ] || [ "$f" = .. ] || [ ! -e "$f" -a ! -L "$f" ] || \
  echo "$f|$(stat -c '%F|%t,%T|%a' "$f")|$(readlink "$f")"; done; cd /
echo --mounts; cat /proc/mounts
echo --ulimit; ulimit -Sn; ulimit -Hn; ulimit -Su; ulimit -Hu
echo --masked; for p in MASKED; do
  if [ -d "$p" ]; then echo "$p dir $(ls -A "$p" | wc -l)";
  elif [ -e "$p" ]; then echo "$p file $(cat "$p" 2>/dev/null | wc -c)"; else echo "$p absent"; fi; done
echo --write; (echo probe > /proc/sys/kernel/domainname) 2>/dev/null && echo domainname writable || echo domainname denied
echo --unshare; unshare -U true 2>/dev/null && echo userns allowed || echo userns denied
""".replace("MASKED", " ".join(sorted(set(ISSUE_MASKED) | BERTH_ONLY_MASKED)))


def sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("--"):
            current = out.setdefault(line[2:], [])
        elif current is not None:
            current.append(line)
    return out


def status(view: dict) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in view["status"])


def mounts(view: dict) -> dict[str, tuple[str, set[str]]]:
    """Mount point → (type, options) as /proc/mounts lists them (the last mount wins)."""
    table = {}
    for line in view["mounts"]:
        _, point, fstype, options, *_ = line.split()
        table[point] = (fstype, set(options.split(",")))
    return table


def dev(view: dict) -> set[str]:
    return set(view["dev"])


def berth_probe(api, script: str = PROBE, **host_config) -> dict[str, list[str]]:
    cid = api.run(["sh", "-c", script], HostConfig={"NetworkMode": "none", **host_config})
    try:
        assert api.wait(cid) == 0, api.logs(cid)
        return sections(b"".join(p for s, p in api.logs(cid) if s == 1).decode())
    finally:
        api.remove(cid)


def docker_probe(d, *options: str, script: str = PROBE) -> dict[str, list[str]]:
    result = d.docker("run", "--rm", "--network", "none", *options, "busybox", "sh", "-c", script)
    return sections(result.stdout.decode())


@pytest.fixture(scope="module")
def docker(dockerd):  # noqa: F811 (the fixture imported above)
    """The private dockerd with busybox imported, and Docker's default view, recorded once."""
    if not shutil.which("docker"):
        pytest.skip("the docker CLI is not installed")
    dockerd.import_busybox("busybox:latest")
    dockerd.default_view = docker_probe(dockerd)
    return dockerd


# --- berth's defaults beside Docker's ------------------------------------------------------


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_status_matches_docker(api, docker, runtime):
    """Capabilities, NoNewPrivs 0 (setuid programs work) and seccomp filter mode 2."""
    ours, theirs = status(berth_probe(api, Runtime=runtime)), status(docker.default_view)
    assert theirs["Seccomp"] == "2" and theirs["NoNewPrivs"] == "0"  # what Docker 20.10 shows here
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters"):
        assert ours[field] == theirs[field], field
    assert capabilities.from_mask(int(ours["CapBnd"], 16)) == sorted(capabilities.DEFAULT, key=capabilities.NAMES.index)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_dev_matches_docker(api, docker, runtime):
    ours, theirs = dev(berth_probe(api, Runtime=runtime)), dev(docker.default_view)
    if runtime == "crun":  # crun makes /dev/core whether or not the host has a /proc/kcore
        ours.discard("core|symbolic link|0,0|777|/proc/kcore")
    assert ours == theirs


def test_dev_with_terminal_matches_docker(api, docker):
    script = "ls -l /dev/console | cut -c1; ls /dev | tr '\\n' ' '"
    cid = api.run(["sh", "-c", script], Tty=True, HostConfig={"NetworkMode": "none", "Runtime": "runc"})
    try:
        assert api.wait(cid) == 0
        ours = api.get(f"/containers/{cid}/logs", stdout=1).body
    finally:
        api.remove(cid)
    theirs = docker.docker("run", "--rm", "-t", "--network", "none", "busybox", "sh", "-c", script).stdout
    assert ours == theirs and ours.startswith(b"c\r\n")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_mounts_match_docker(api, docker, runtime):
    """The same mount points (less what berth masks beyond 20.10), read-only where Docker's
    are, the same options on /proc, /dev, /dev/pts, /dev/shm (64 MB), /dev/mqueue, /sys."""
    ours, theirs = mounts(berth_probe(api, Runtime=runtime)), mounts(docker.default_view)
    assert set(ours) - BERTH_ONLY_MASKED == set(theirs)
    # a masked file is /dev/null bound over it: runc's from the container's /dev, crun's
    # read-only from the host's; either way it reads empty (see the next test)
    masked_files = {line.split()[0] for line in docker.default_view["masked"] if line.split()[1] == "file"}
    flags = {"ro", "rw", "nosuid", "nodev", "noexec"}
    for point in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"):
        (our_type, our_opts), (their_type, their_opts) = ours[point], theirs[point]
        assert our_type == their_type, point
        assert our_opts & flags == their_opts & flags, point
        for key in ("size=", "mode=", "gid=", "ptmxmode="):
            assert {o for o in our_opts if o.startswith(key)} == {o for o in their_opts if o.startswith(key)}, point
    assert "size=65536k" in ours["/dev/shm"][1]
    for point, (fstype, opts) in theirs.items():
        if point.startswith(("/proc/", "/sys/")) and point != "/sys/fs/cgroup" and point not in masked_files:
            assert ("ro" in ours[point][1]) == ("ro" in opts), point  # masked dirs, read-only /proc parts, cgroups


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_masked_and_readonly_paths_behave_as_in_docker(api, docker, runtime):
    ours = berth_probe(api, Runtime=runtime)
    theirs = docker.default_view
    berth_only = {line for line in ours["masked"] if line.split()[0] in BERTH_ONLY_MASKED}
    assert [line for line in ours["masked"] if line not in berth_only] == \
        [line for line in theirs["masked"] if line.split()[0] not in BERTH_ONLY_MASKED]
    for line in ours["masked"]:  # whatever the host has there, the container sees nothing
        assert line.endswith((" 0", " absent")), line
    assert ours["write"] == theirs["write"] == ["domainname denied"]


def test_ulimits_match_docker(api, docker):
    assert berth_probe(api)["ulimit"] == docker.default_view["ulimit"]


def test_default_profile_filters_like_docker(api, docker):
    """unshare(2) of a user namespace needs no capability, only the profile forbids it
    (without CAP_SYS_ADMIN); with --cap-add SYS_ADMIN the profile lets it through."""
    assert berth_probe(api)["unshare"] == docker.default_view["unshare"] == ["userns denied"]
    script = "echo --unshare; unshare -U true 2>/dev/null && echo userns allowed || echo userns denied"
    assert berth_probe(api, script, CapAdd=["SYS_ADMIN"])["unshare"] == \
        docker_probe(docker, "--cap-add", "SYS_ADMIN", script=script)["unshare"] == ["userns allowed"]


# --- options ---------------------------------------------------------------------------------


def daemon_bounding(daemon) -> int:
    return capabilities.status_mask(Path(f"/proc/{daemon.proc.pid}/status").read_text(), "CapBnd")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_privileged_starts_with_the_bounding_set(api, daemon, runtime):
    view = berth_probe(api, Privileged=True, Runtime=runtime)
    st = status(view)
    held = daemon_bounding(daemon) & capabilities.to_mask(capabilities.NAMES)
    assert int(st["CapBnd"], 16) == int(st["CapEff"], 16) == int(st["CapPrm"], 16) == held
    assert (st["Seccomp"], st["NoNewPrivs"]) == ("0", "0")
    table = mounts(view)
    assert "rw" in table["/sys"][1]
    assert not [p for p in table if p.startswith("/proc/") or p == "/sys/firmware"]  # nothing masked or read-only
    assert view["write"] == ["domainname writable"]  # /proc/sys writable (the UTS namespace's own domainname)
    names = {line.split("|")[0] for line in view["dev"]}
    host = {p.name for p in Path("/dev").iterdir() if p.is_char_device() and not p.is_symlink() and p.name != "console"}
    assert host <= names


def test_cap_add_all_is_the_bounding_set(api, daemon):
    st = status(berth_probe(api, CapAdd=["ALL"], CapDrop=["NET_RAW"]))
    expected = daemon_bounding(daemon) & capabilities.to_mask(capabilities.NAMES) & ~capabilities.to_mask(["CAP_NET_RAW"])
    assert int(st["CapEff"], 16) == expected
    assert st["Seccomp"] == "2"


def test_cap_add_outside_the_bounding_set_is_refused(api):
    """Refused at create, naming why, rather than left to fail in the runtime's capset(2)."""
    missing = sorted(set(capabilities.NAMES) - capabilities.bounding())
    if not missing:
        pytest.skip("this host's bounding set holds every capability")
    reply = api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"CapAdd": [missing[0]]}})
    assert reply.status == 400 and "bounding set" in reply.message


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_seccomp_unconfined(api, docker, runtime):
    ours = berth_probe(api, SecurityOpt=["seccomp=unconfined"], Runtime=runtime)
    theirs = docker_probe(docker, "--security-opt", "seccomp=unconfined")
    assert status(ours)["Seccomp"] == status(theirs)["Seccomp"] == "0"
    assert ours["unshare"] == theirs["unshare"] == ["userns allowed"]


def test_no_new_privileges(api, docker):
    for opt in ("no-new-privileges", "no-new-privileges=true", "no-new-privileges:true"):
        assert status(berth_probe(api, SecurityOpt=[opt]))["NoNewPrivs"] == "1", opt
    assert status(docker_probe(docker, "--security-opt", "no-new-privileges"))["NoNewPrivs"] == "1"
    assert status(berth_probe(api, SecurityOpt=["no-new-privileges=false"]))["NoNewPrivs"] == "0"


def test_custom_profile(api, docker, tmp_path):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    script = "echo --mkdir; mkdir /made 2>&1; echo rc=$?"
    # the CLI sends the file's content; the API client does the same here
    ours = berth_probe(api, script, SecurityOpt=[f"seccomp={json.dumps(profile)}"])
    theirs = docker_probe(docker, "--security-opt", f"seccomp={path}", script=script)
    assert ours["mkdir"] == theirs["mkdir"] == ["mkdir: can't create directory '/made': Permission denied", "rc=1"]


def test_bad_security_opt_is_refused(api):
    """Refused at create, as dockerd does."""
    reply = api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"SecurityOpt": ["seccomp-ish"]}})
    assert (reply.status, reply.message) == (400, 'invalid --security-opt 1: "seccomp-ish"')


# --- the BPF program crun gets is the one crun would compile ---------------------------------


def crun_compiles(tmp_path: Path, oci_filter: dict, caps: list[str]) -> bytes:
    """`crun create` a busybox bundle with `oci_filter` and return the program crun wrote."""
    bundle_dir, state = tmp_path / "bundle", tmp_path / "state"
    (bundle_dir / "rootfs").mkdir(parents=True, exist_ok=True)
    if not (bundle_dir / "rootfs" / "bin").exists():
        busybox.write_rootfs_tar(busybox.find_busybox(), tmp_path / "rootfs.tar")
        # GNU tar: our own busybox tar, its absolute applet links kept (any Python)
        subprocess.run(["tar", "-xf", str(tmp_path / "rootfs.tar"), "-C", str(bundle_dir / "rootfs")], check=True)
    (bundle_dir / "config.json").unlink(missing_ok=True)  # `crun spec` does not overwrite
    subprocess.run(["crun", "spec"], cwd=bundle_dir, check=True, capture_output=True)
    config = json.loads((bundle_dir / "config.json").read_text())
    config["process"].update(terminal=False, args=["/bin/true"],
                             capabilities={k: caps for k in ("bounding", "effective", "permitted")})
    config["linux"]["seccomp"] = oci_filter
    (bundle_dir / "config.json").write_text(json.dumps(config))
    name = f"bpf-{abs(hash(json.dumps(oci_filter))) % 10**8}"
    argv = ["crun", "--cgroup-manager=disabled", "--root", str(state), "create", "--bundle", str(bundle_dir), name]
    if cgroups.detect().hybrid:  # crun refuses a hybrid host while the v2 tree is visible
        argv = ["unshare", "-m", "--propagation", "slave", "sh", "-c",
                f'umount -l {cgroups.UNIFIED} && exec "$@"', "sh", *argv]
    try:  # not captured: the container's init keeps crun's stdio open until it is deleted
        with open(tmp_path / "crun.log", "wb") as log:
            result = subprocess.run(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, timeout=30, check=False)
        assert result.returncode == 0, (tmp_path / "crun.log").read_text()
        return (state / name / "seccomp.bpf").read_bytes()
    finally:
        subprocess.run(["crun", "--root", str(state), "delete", "-f", name], capture_output=True, check=False)


SPLIT_PROFILE = {  # one argument compared twice: one rule per comparison
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
    "syscalls": [{"names": ["read", "write", "no_such_syscall"], "action": "SCMP_ACT_ALLOW"},
                 {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                  "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_GE"}, {"index": 0, "value": 16, "op": "SCMP_CMP_LT"}]},
                 {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                  "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 255, "valueTwo": 1,
                                                                          "op": "SCMP_CMP_MASKED_EQ"}]},
                 {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                 {"names": ["chroot"], "action": "SCMP_ACT_KILL_PROCESS"}]}


@pytest.mark.parametrize("case", ["default", "all-caps", "split-args"])
def test_bpf_is_what_crun_compiles(tmp_path, case):
    if seccomp._libseccomp() is None:
        pytest.skip("libseccomp is not installed: crun compiles the filter itself")
    caps = capabilities.container_set(["ALL"] if case == "all-caps" else None, None, privileged=False)
    profile = json.dumps(SPLIT_PROFILE) if case == "split-args" else ""
    f = seccomp.filter_for(frozenset(caps), profile)
    assert base64.b64decode(f.bpf) == crun_compiles(tmp_path, json.loads(bytes(f.oci)), caps)


# --- the pieces alone ------------------------------------------------------------------------

HOST = seccomp.Host("amd64", "SCMP_ARCH_X86_64", (5, 10))


def test_convert_evaluates_conditions():
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW", "comment": "always"},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
            {"names": ["newer"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "6.2"}},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
            {"names": ["arm_fadvise64_64"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm", "arm64"]}},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["both"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_BPF"]}},
            {"name": "clone3", "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_MASKED_EQ"}],
             "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}}]}
    plain = seccomp.convert(profile, frozenset(capabilities.DEFAULT), HOST)
    assert plain["defaultAction"] == "SCMP_ACT_ERRNO" and plain["defaultErrnoRet"] == 1
    assert plain["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert [s["names"] for s in plain["syscalls"]] == [["read"], ["ptrace"], ["arch_prctl"], ["clone3"], ["clone"]]
    assert plain["syscalls"][3] == {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
    assert plain["syscalls"][4]["args"] == [{"index": 0, "value": 1, "op": "SCMP_CMP_MASKED_EQ"}]
    admin = seccomp.convert(profile, frozenset([*capabilities.DEFAULT, "CAP_SYS_ADMIN"]), HOST)
    assert [s["names"] for s in admin["syscalls"]] == [["read"], ["ptrace"], ["arch_prctl"], ["mount"]]
    arm = seccomp.convert(profile, frozenset(), seccomp.Host("arm64", "SCMP_ARCH_AARCH64", (6, 2)))
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert [s["names"] for s in arm["syscalls"]][:3] == [["read"], ["ptrace"], ["newer"]]
    assert ["arm_fadvise64_64"] in [s["names"] for s in arm["syscalls"]]
    assert seccomp.convert({}, frozenset(), HOST) is None


def test_default_profile_as_docker_evaluates_it():
    default = json.loads(bytes(seccomp.filter_for(frozenset(capabilities.DEFAULT)).oci))
    allowed = {n for s in default["syscalls"] if s["action"] == "SCMP_ACT_ALLOW" and "args" not in s for n in s["names"]}
    assert {"read", "execve", "clone3"} - allowed == {"clone3"}  # clone3 answers ENOSYS, glibc falls back
    assert not {"mount", "unshare", "setns", "bpf", "perf_event_open", "reboot", "kexec_load"} & allowed
    assert {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38} in default["syscalls"]
    everything = json.loads(bytes(seccomp.filter_for(frozenset(capabilities.NAMES)).oci))
    assert not [s for s in everything["syscalls"] if s["names"] == ["clone3"]]  # CAP_SYS_ADMIN: clone3 allowed
    assert {"mount", "unshare", "setns", "bpf", "perf_event_open", "reboot"} <= {
        n for s in everything["syscalls"] if s["action"] == "SCMP_ACT_ALLOW" for n in s["names"]}


def test_filters_are_cached_per_capability_set():
    caps = frozenset(capabilities.DEFAULT)
    first = seccomp.filter_for(caps)
    before = seccomp.statistics()
    assert seccomp.filter_for(frozenset(reversed(capabilities.DEFAULT))) is first
    assert seccomp.statistics()["hits"] == before["hits"] + 1


def test_bad_profiles_are_the_users_error():
    for text in ("{bad", "[]", '{"defaultAction": "SCMP_ACT_NOPE", "syscalls": []}',
                 '{"defaultAction": "SCMP_ACT_ALLOW", "archMap": [], "architectures": ["x"], "syscalls": [{"names": ["x"]}]}'):
        with pytest.raises(BadRequest, match="Decoding seccomp profile failed"):
            seccomp.filter_for(frozenset(), text)


def test_capability_rules():
    held = frozenset(capabilities.NAMES) - {"CAP_SYS_RESOURCE"}
    rules = lambda add=None, drop=None, privileged=False: capabilities.container_set(  # noqa: E731
        add, drop, privileged=privileged, held=held)
    assert rules() == list(capabilities.DEFAULT)
    assert rules(privileged=True) == [c for c in capabilities.NAMES if c != "CAP_SYS_RESOURCE"]
    assert rules(["all"]) == rules(privileged=True)
    assert "CAP_CHOWN" not in rules(["ALL"], ["chown"])
    assert rules(["NET_ADMIN"], ["ALL"]) == ["CAP_NET_ADMIN"]
    assert rules(["cap_net_admin"], ["MKNOD"]) == [c for c in capabilities.DEFAULT if c != "CAP_MKNOD"] + ["CAP_NET_ADMIN"]
    assert "CAP_KILL" in rules(["KILL"], ["KILL"])  # as in Docker, an add wins over a drop
    with pytest.raises(BadRequest, match='unknown capability: "CAP_NOPE"'):
        rules(["nope"])
    with pytest.raises(BadRequest, match="CAP_SYS_RESOURCE.*bounding set"):
        rules(["SYS_RESOURCE"])
    assert capabilities.from_mask(0xA80425FB) == sorted(capabilities.DEFAULT, key=capabilities.NAMES.index)


def test_security_opt_parsing():
    assert security.parse(None) == security.SecurityOptions()
    assert security.parse(["no-new-privileges"]).no_new_privileges
    assert security.parse(["no-new-privileges=true"]).no_new_privileges
    assert not security.parse(["no-new-privileges", "no-new-privileges:false"]).no_new_privileges
    assert security.parse(["seccomp=unconfined", "apparmor=unconfined", "label=disable"]) == \
        security.SecurityOptions(seccomp="unconfined", apparmor="unconfined", labels=("disable",))
    for bad, message in (("nonsense", 'invalid --security-opt 1: "nonsense"'),
                         ("foo=bar", 'invalid --security-opt 2: "foo=bar"'),
                         ("no-new-privileges=maybe", 'invalid --security-opt 2: "no-new-privileges=maybe"')):
        with pytest.raises(BadRequest) as err:
            security.parse([bad])
        assert err.value.message == message


def test_masked_paths_include_the_issue_list():
    assert set(ISSUE_MASKED) <= set(bundle.masked_paths())
    assert set(bundle.READONLY_PATHS) == {"/proc/sys", "/proc/sysrq-trigger", "/proc/bus", "/proc/fs", "/proc/irq"}
