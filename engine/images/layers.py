"""Apply an image layer tar into a directory: `fs.unpack` under the layer rules.

A layer is untrusted input; every rule about what it may do (names, links, devices,
whiteouts, truncation) is `fs.unpack`'s, the one unpacker for every untrusted tar. Under
`unpack.LAYER`, AUFS-style whiteouts (`.wh.name`, `.wh..wh..opq`) become overlayfs
whiteouts (a 0:0 character device, the `trusted.overlay.opaque` xattr), so each unpacked
layer can be an overlay lower directory as it is, and ownership is kept numerically
(host user names mean nothing in a container).

The sha256 of the uncompressed stream (the layer's DiffID) is computed in the same pass,
and a `tarsplit.Recorder` given to `apply_tar` keeps what is needed to rebuild the exact
tar later (for `docker save`). The image store unpacks into a scratch directory and
renames it into place only once this returned, so a refused layer leaves nothing.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from ..fs import inroot, unpack
from ..fs.unpack import OPAQUE_MARKER, WHITEOUT_PREFIX, uncompressed
from .tarsplit import Recorder

__all__ = ["OPAQUE_MARKER", "WHITEOUT_PREFIX", "apply_tar", "uncompressed"]


def apply_tar(raw: BinaryIO, dest: str, recorder: Recorder | None = None) -> unpack.Unpacked:
    """Unpack the layer tar read from `raw` into the directory `dest`; its DiffID is the
    answer's `digest`. With a `recorder`, the tar's headers and padding are recorded as
    they pass."""
    os.makedirs(dest, exist_ok=True)  # the store's own scratch path: trusted
    root_fd = os.open(dest, inroot.DIR_FLAGS)
    try:
        return unpack.unpack(raw, root_fd, "/", unpack.LAYER, recorder=recorder, digest=True)
    finally:
        os.close(root_fd)
