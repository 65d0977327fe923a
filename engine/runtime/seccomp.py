"""Docker's seccomp profiles, converted to the OCI `linux.seccomp` of one container.

A Docker profile is the OCI filter plus conditions: an `archMap` (the native
architecture and the ones it also runs, x86 and x32 beside amd64), and rules that apply
only `includes` (all of) or `excludes` (any of) some capabilities, architectures or a
minimum kernel. Converting evaluates the conditions for one container, as moby's
`setupSeccomp` does: capabilities against the container's bounding set, the
architecture against the host's, `minKernel` against the host's `major.minor`. What
remains is a plain OCI filter (defaultAction, defaultErrnoRet, architectures, syscalls
with names, action, errnoRet, args) that crun and runc compile with libseccomp.

The default profile is `seccomp_default.json` beside this module: Docker's own,
verbatim, from github.com/moby/profiles `seccomp/default.json` v0.2.3 as vendored in
moby/moby (commit 35797366d7cdae8d1d84eac06fbb314ccaf3ccaf, 2026-05-06); Copyright The
Moby Authors, Apache License 2.0 (see `seccomp_default.NOTICE`). It is newer than the one
compiled into Docker 20.10 (which allowed io_uring and every socket family, and lacked
syscalls such as fchmodat2, map_shadow_stack and mseal that newer C libraries call).

A container's filter depends only on its capability set (host and profile being fixed
for the daemon's life), so it is built once per set and profile and cached (`Filter`):
the OCI filter already encoded as JSON (`msgspec.Raw`, dropped into config.json as is),
and the BPF program the runtime would compile from it. Compiling is what costs: crun
1.8 spends about 13 ms of each `run` in libseccomp on Docker's profile (three
architectures, ~380 syscalls) and this build of crun keeps no cache. So the daemon
compiles it once per filter with the host's libseccomp, exactly as crun does
(`compile_bpf`, the same calls in the same order), and hands crun the program in the
`run.oci.seccomp_bpf_data` annotation, which crun loads instead of compiling. runc
ignores the annotation and compiles `linux.seccomp` itself. Without libseccomp the
annotation is left out and crun compiles too.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import functools
import logging
import os
import platform
from pathlib import Path

import msgspec

from ..errors import BadRequest

DEFAULT_PROFILE = Path(__file__).with_name("seccomp_default.json")
BPF_ANNOTATION = "run.oci.seccomp_bpf_data"  # crun: base64 of the program to load as is
log = logging.getLogger("berth.runtime")

# `uname -m` → the architecture name Docker's profiles use in `includes`/`excludes`
# (libseccomp's, as moby maps GOARCH), and its SCMP_ARCH_* as in `archMap`
_NATIVE = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"), "i686": ("x86", "SCMP_ARCH_X86"), "i386": ("x86", "SCMP_ARCH_X86"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"), "armv7l": ("arm", "SCMP_ARCH_ARM"), "armv6l": ("arm", "SCMP_ARCH_ARM"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"), "ppc64": ("ppc64", "SCMP_ARCH_PPC64"),
    "s390x": ("s390x", "SCMP_ARCH_S390X"), "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
    "mips64": ("mips64", "SCMP_ARCH_MIPS64"), "loongarch64": ("loong64", "SCMP_ARCH_LOONGARCH64"),
}
# the OCI LinuxSeccomp fields a profile may carry, copied as they are
_OCI_FIELDS = ("defaultAction", "defaultErrnoRet", "architectures", "flags", "listenerPath", "listenerMetadata")
_SYSCALL_FIELDS = ("names", "action", "errnoRet", "args")


class Host(msgspec.Struct, frozen=True):
    """What a profile's conditions are evaluated against, besides capabilities."""

    arch: str  # Docker's name for it: amd64, arm64, ...
    scmp_arch: str  # SCMP_ARCH_X86_64, ...
    kernel: tuple[int, int]  # major, minor


def parse_kernel(release: str) -> tuple[int, int]:
    """`6.1.0-18-amd64` → (6, 1); only major and minor count, as in moby."""
    major, _, rest = release.partition(".")
    minor = ""
    for ch in rest:
        if not ch.isdigit():
            break
        minor += ch
    try:
        return int(major), int(minor)
    except ValueError:
        raise ValueError(f"failed to parse kernel version {release!r}") from None


@functools.cache
def this_host() -> Host:
    machine = platform.machine()
    arch, scmp = _NATIVE.get(machine, (machine, ""))
    return Host(arch, scmp, parse_kernel(platform.release()))


def _holds(cond: dict, caps: frozenset[str], host: Host, *, include: bool) -> bool:
    """Whether an `includes` (all must hold) or `excludes` (any suffices) condition holds."""
    tests = []
    if cond.get("arches"):
        tests.append(host.arch in cond["arches"])
    if cond.get("caps"):
        have = [c in caps for c in cond["caps"]]
        tests.append(all(have) if include else any(have))
    if cond.get("minKernel"):
        tests.append(host.kernel >= parse_kernel(cond["minKernel"]))
    return all(tests) if include else any(tests)


def convert(profile: dict, caps: frozenset[str], host: Host) -> dict | None:
    """The OCI filter of a Docker profile for a container holding `caps` on `host`, or
    None if the profile confines nothing (no default action and no rules)."""
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    if profile.get("architectures") and profile.get("archMap"):
        raise ValueError("both 'architectures' and 'archMap' are specified in the seccomp profile, use either")
    out = {k: profile[k] for k in _OCI_FIELDS if profile.get(k) not in (None, [], "")}
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == host.scmp_arch:
            out["architectures"] = [entry["architecture"], *(entry.get("subArchitectures") or [])]
            break
    syscalls = []
    for rule in profile.get("syscalls") or []:
        if rule.get("name"):
            if rule.get("names"):
                raise ValueError("both 'name' and 'names' are specified in the seccomp profile, use either")
            rule = {**rule, "names": [rule["name"]]}
        if rule.get("excludes") and _holds(rule["excludes"], caps, host, include=False):
            continue
        if rule.get("includes") and not _holds(rule["includes"], caps, host, include=True):
            continue
        syscalls.append({k: rule[k] for k in _SYSCALL_FIELDS if rule.get(k) not in (None, [])})
    if syscalls:
        out["syscalls"] = syscalls
    return out


# --- compiling a filter to BPF, as crun 1.8 does (src/libcrun/seccomp.c) ------------------

_ACTIONS = {"SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000, "SCMP_ACT_KILL_PROCESS": 0x80000000,
            "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000,
            "SCMP_ACT_NOTIFY": 0x7FC00000}
_WITH_ERRNO = {"SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000}
_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
        "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
_EPERM = 1


class _ArgCmp(ctypes.Structure):  # struct scmp_arg_cmp
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


@functools.cache
def _libseccomp() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def _action(name: str, errno_ret: int) -> int:
    if name in _WITH_ERRNO:
        return _WITH_ERRNO[name] | (errno_ret & 0xFFFF)
    if name in _ACTIONS:
        return _ACTIONS[name]
    raise ValueError(f"seccomp get action `{name}`")


def compile_bpf(oci: dict) -> bytes | None:
    """The BPF program crun would build from the OCI filter `oci`, or None without
    libseccomp. Mirrors crun: default action (errno EPERM unless defaultErrnoRet), each
    architecture added, rules whose action is the default skipped, names libseccomp does
    not know skipped, and a rule comparing one argument twice split into one rule per
    comparison (libseccomp takes one comparison per argument)."""
    lib = _libseccomp()
    if lib is None:
        return None
    ctx = lib.seccomp_init(_action(oci["defaultAction"], oci.get("defaultErrnoRet", _EPERM)))
    if not ctx:
        raise ValueError("error seccomp_init")
    try:
        for arch in oci.get("architectures") or []:
            token = lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode())
            if token == 0:
                raise ValueError(f"seccomp unknown architecture {arch}")
            ret = lib.seccomp_arch_add(ctx, token)
            if ret < 0 and ret != -17:  # EEXIST: the native one is always there
                raise ValueError(f"seccomp adding architecture {arch}: {os.strerror(-ret)}")
        default = _action(oci["defaultAction"], oci.get("defaultErrnoRet", _EPERM))
        for rule in oci.get("syscalls") or []:
            action = _action(rule["action"], rule.get("errnoRet", _EPERM))
            if action == default:
                continue
            args = rule.get("args") or []
            cmps = (_ArgCmp * max(len(args), 1))(*[
                _ArgCmp(a["index"], _OPS[a["op"]], a.get("value", 0), a.get("valueTwo", 0)) for a in args[:6]])
            indexes = [a["index"] for a in args[:6]]
            split = len(set(indexes)) < len(indexes)
            for name in rule["names"]:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == -1:  # __NR_SCMP_ERROR: unknown to this libseccomp; crun warns and skips it
                    continue
                groups = [(1, ctypes.byref(cmps[k])) for k in range(len(indexes))] if split else [(len(indexes), cmps)]
                for count, array in groups:
                    ret = lib.seccomp_rule_add_array(ctx, action, nr, count, array)
                    if ret < 0:
                        raise ValueError(f"seccomp_rule_add_array {name}: {os.strerror(-ret)}")
        fd = os.memfd_create("seccomp.bpf", os.MFD_CLOEXEC)
        try:
            ret = lib.seccomp_export_bpf(ctx, fd)
            if ret < 0:
                raise ValueError(f"seccomp_export_bpf: {os.strerror(-ret)}")
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)


# --- the cache ---------------------------------------------------------------------------


class Filter(msgspec.Struct, frozen=True):
    """One container's seccomp confinement, ready for config.json."""

    oci: msgspec.Raw  # the OCI `linux.seccomp`, encoded
    bpf: str = ""  # base64 BPF program for crun's BPF_ANNOTATION ("" without libseccomp)


@functools.cache
def _default_profile() -> dict:
    return msgspec.json.decode(DEFAULT_PROFILE.read_bytes())


@functools.lru_cache(maxsize=64)
def filter_for(caps: frozenset[str], profile: str = "") -> Filter | None:
    """The seccomp filter of a container holding `caps`: Docker's default profile, or
    `profile`, a profile's JSON text (what `docker run --security-opt seccomp=FILE`
    sends). None when the profile confines nothing. Cached per (caps, profile)."""
    try:
        data = msgspec.json.decode(profile) if profile else _default_profile()
        if not isinstance(data, dict):
            raise ValueError("a profile is a JSON object")
        converted = convert(data, caps, this_host())
        if converted is None:
            return None
        program = compile_bpf(converted)
    except (msgspec.DecodeError, ValueError, TypeError, AttributeError, KeyError) as exc:
        raise BadRequest(f"Decoding seccomp profile failed: {exc}") from None
    if program is None:
        log.warning("libseccomp not found: the runtime compiles each container's seccomp filter itself")
    return Filter(msgspec.Raw(msgspec.json.encode(converted)),
                  base64.b64encode(program).decode() if program else "")


def statistics() -> dict:
    """How well the per-capability-set cache serves (hits, misses, size)."""
    info = filter_for.cache_info()
    return {"hits": info.hits, "misses": info.misses, "size": info.currsize}
