"""ADD from a URL: only from this host (loopback), since nothing may leave it.

A URL whose host is a loopback address (127.0.0.0/8, ::1) or `localhost` is fetched
directly (no proxy, redirects only to loopback again), as Docker's classic builder does:
the file is named after the URL path's last component (or the destination, when that
is no directory), mode 0600, its mtime from `Last-Modified`, and never unpacked. Any
other URL is refused with a message saying why, before anything is fetched.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import urllib.parse
from pathlib import Path

from ..errors import BadRequest

LIMIT = 1 << 30  # what one URL may bring, at most


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check(kw: str, url: str, line: int) -> None:
    from .dockerfile import error

    if kw != "ADD":
        raise error(line, f"{kw} does not take URLs (ADD does)")
    if not _loopback(url):
        raise error(line, f"ADD from {url}: berth's builder fetches URLs on this host only (127.0.0.1, ::1, "
                          "localhost): nothing leaves this host")


def fetch(url: str, into: Path) -> str:
    """Download `url` into the directory `into`; the file's name there."""
    # Imported here: urllib.request brings http.client and email (~0.85 MB of the
    # daemon's memory), which only an ADD of a URL needs.
    import email.utils
    import urllib.error
    import urllib.request

    class LoopbackOnly(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            if not _loopback(newurl):
                raise BadRequest(f"ADD: {req.full_url} redirects off this host ({newurl}): refused")
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    name = posixpath.basename(urllib.parse.urlsplit(url).path) or "__unnamed__"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), LoopbackOnly())
    into.mkdir(parents=True, exist_ok=True)
    path = into / name
    try:
        with opener.open(url, timeout=60) as resp, open(path, "wb") as out:
            size = 0
            while chunk := resp.read(1 << 20):
                size += len(chunk)
                if size > LIMIT:
                    raise BadRequest(f"ADD: {url} is over {LIMIT >> 20} MiB")
                out.write(chunk)
            modified = resp.headers.get("Last-Modified")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BadRequest(f"ADD failed: cannot fetch {url}: {reason}") from None
    os.chmod(path, 0o600)
    if modified:
        try:
            when = email.utils.parsedate_to_datetime(modified).timestamp()
            os.utime(path, (when, when))
        except (TypeError, ValueError):
            pass
    return name
