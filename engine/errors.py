"""Errors the Engine raises; each maps to exactly one HTTP status.

The API layer turns an `EngineError` into `{"message": ...}` with `status`; nothing else
decides status codes, so a plugin or test calling the Engine sees the same error a
docker client would.
"""

from __future__ import annotations

import errno
import os

# Write failures that mean the filesystem is full (or the user's quota is), not a bug.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class EngineError(Exception):
    """Base class: a message a user can act on, and the HTTP status that carries it."""

    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadRequest(EngineError):
    status = 400


class NotFound(EngineError):
    status = 404


class Unauthorized(EngineError):
    """A registry refused the credentials (`docker login`), as newer dockerd answers: 401."""

    status = 401


class Forbidden(EngineError):
    """Refused for good, e.g. a write to a read-only root filesystem."""

    status = 403


class Conflict(EngineError):
    status = 409


class Unavailable(EngineError):
    """A feature this daemon does not run, as dockerd outside swarm mode answers for swarm's endpoints: 503."""

    status = 503


class NotModified(EngineError):
    """The action was already done (start of a running container): success, no body."""

    status = 304


class InsufficientStorage(EngineError):
    """A write failed for want of space. dockerd answers 500; berth keeps 500 for its own
    bugs, and docker clients show the message of a 507 just as they show a 500's."""

    status = 507


class StartFailed(EngineError):
    """The OCI runtime refused to start the process; dockerd answers these with 400."""

    status = 400


def no_such_container(ref: str) -> NotFound:
    return NotFound(f"No such container: {ref}")


def no_such_image(ref: str) -> NotFound:
    return NotFound(f"No such image: {ref}")


def no_space(exc: OSError, what: str) -> InsufficientStorage:
    """A write of `what` (a path, or words naming it) that failed with `exc`, one of NO_SPACE."""
    return InsufficientStorage(f"{os.strerror(exc.errno).lower()}: could not write {what}")
