"""The built-in `busybox:latest` image, made from the host's static busybox.

A fresh machine has no registry to pull from, so at first start the daemon builds a small
rootfs tar (static busybox, a symlink per applet, minimal /etc) and imports it like any
other rootfs. File times are the binary's own, so the same busybox gives the same layer.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

from ..models import ImageRuntimeConfig

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
REPO_TAG = "busybox:latest"
RUNTIME = ImageRuntimeConfig(cmd=["sh"], env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
MESSAGE = "berth built-in image: Debian busybox-static"

_DIRS = {"bin": 0o755, "sbin": 0o755, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755,
         "etc": 0o755, "root": 0o700, "home": 0o755, "tmp": 0o1777, "var": 0o755,
         "var/tmp": 0o1777, "proc": 0o555, "sys": 0o555, "dev": 0o755}
_FILES = {
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": b"root:x:0:\nnogroup:x:65534:\n",
}


def find_busybox() -> str | None:
    """Path of a static busybox on this host, if one is installed."""
    return next((p for p in BUSYBOX_CANDIDATES if os.path.isfile(p)), None)


def write_rootfs_tar(busybox: str, out: Path) -> None:
    """Write the busybox rootfs as an uncompressed tar at `out`."""
    mtime = int(os.stat(busybox).st_mtime)
    applets = subprocess.run([busybox, "--list-full"], capture_output=True, check=True, text=True).stdout.split()

    def info(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
        entry = tarfile.TarInfo(name)
        entry.type, entry.mode, entry.size, entry.mtime = kind, mode, size, mtime
        return entry

    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, mode in _DIRS.items():
            tar.addfile(info(name, tarfile.DIRTYPE, mode))
        with open(busybox, "rb") as binary:
            tar.addfile(info("bin/busybox", tarfile.REGTYPE, 0o755, os.fstat(binary.fileno()).st_size), binary)
        for name, content in _FILES.items():
            tar.addfile(info(name, tarfile.REGTYPE, 0o644, len(content)), io.BytesIO(content))
        for applet in sorted(set(applets) - {"bin/busybox"}):
            link = info(applet, tarfile.SYMTYPE, 0o777)
            link.linkname = "/bin/busybox"
            tar.addfile(link)
