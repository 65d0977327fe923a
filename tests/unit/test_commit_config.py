"""The committed image's config: request Config or the container's, `--change` lines, then
dockerd's merge with the container's config."""

from __future__ import annotations

from engine.build.changes import compile_changes
from engine.images.commit import new_config
from engine.models import CommitOptions, ContainerConfig, HealthConfig, ImageRuntimeConfig

CONTAINER = ContainerConfig(
    env=["PATH=/bin", "A=container"], cmd=["sh", "-c", "work"], labels={"team": "x"}, working_dir="/srv",
    exposed_ports={"80/tcp": {}}, healthcheck=HealthConfig(test=["CMD", "true"], interval=5, retries=3))


def test_container_config_with_changes():
    lines = ['CMD ["echo", "x"]', "ENV A=changed", "EXPOSE 90"]
    cfg = new_config(CONTAINER, CommitOptions(), compile_changes(lines))
    assert cfg.cmd == ["echo", "x"] and cfg.env == ["PATH=/bin", "A=changed"]
    assert cfg.exposed_ports == {"80/tcp": {}, "90/tcp": {}} and cfg.labels == {"team": "x"}
    assert cfg.working_dir == "/srv" and cfg.healthcheck == CONTAINER.healthcheck


def test_request_config_is_filled_from_the_container():
    body = ContainerConfig(env=["B=body", "A=body"], labels={"k": "v"}, healthcheck=HealthConfig(interval=9))
    cfg = new_config(CONTAINER, CommitOptions(config=body), compile_changes([]))
    assert cfg.env == ["B=body", "A=body", "PATH=/bin"]  # by name: the request's A wins
    assert cfg.cmd == ["sh", "-c", "work"] and cfg.labels == {"team": "x", "k": "v"}
    assert cfg.healthcheck == HealthConfig(test=["CMD", "true"], interval=9, retries=3)


def test_an_entrypoint_change_clears_the_inherited_cmd():
    cfg = new_config(CONTAINER, CommitOptions(), compile_changes(['ENTRYPOINT ["/app"]']))
    assert (cfg.entrypoint, cfg.cmd) == (["/app"], None)  # the container's Cmd is not merged back either
    kept = compile_changes(['CMD ["a"]', 'ENTRYPOINT ["b"]'])(ImageRuntimeConfig())
    assert (kept.entrypoint, kept.cmd) == (["b"], ["a"])
