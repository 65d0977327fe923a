"""Swarm mode's endpoints, answered as a dockerd that is not part of a swarm answers
them (503): berth never joins one (out of scope for good, docs/architecture.md).
Clients ask anyway: docker-py's tests leave the swarm after each network test, and
`docker node ls` or `docker service ls` must fail with dockerd's words."""

from __future__ import annotations

from ..core import Engine
from ..errors import Unavailable
from .http import Request, Response

NOT_IN_SWARM = "This node is not part of a swarm"
NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this '
                 "node to swarm and try again.")


async def not_in_swarm(req: Request, engine: Engine) -> Response:
    """`POST /swarm/leave`, `/swarm/unlock`, `GET /swarm/unlockkey`: there is no swarm to act on."""
    raise Unavailable(NOT_IN_SWARM)


async def not_a_manager(req: Request, engine: Engine) -> Response:
    """What only a swarm manager answers: the swarm, its nodes, services, tasks, secrets, configs."""
    raise Unavailable(NOT_A_MANAGER)


async def unsupported(req: Request, engine: Engine) -> Response:
    """`POST /swarm/init`, `/swarm/join`: berth does not run swarm mode."""
    raise Unavailable("swarm mode is not supported by berth")
