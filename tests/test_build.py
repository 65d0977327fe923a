"""`POST /build` through the API: instructions, layers and history, the cache,
multi-stage builds, .dockerignore, failures and parse errors."""

from __future__ import annotations

import io
import json
import tarfile

import pytest


def context(files: dict[str, str | bytes], modes: dict[str, int] | None = None) -> bytes:
    """A context tar of `files` (name → content; a name ending in / is a directory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime = 1_700_000_000
            if name.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            data = content.encode() if isinstance(content, str) else content
            info.size, info.mode = len(data), (modes or {}).get(name, 0o644)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Build:
    def __init__(self, status: int, body: bytes):
        self.status = status
        self.body = body
        self.messages = [json.loads(line) for line in body.splitlines() if line.strip()] if status == 200 else []

    @property
    def text(self) -> str:
        return "".join(m.get("stream", "") for m in self.messages)

    @property
    def error(self) -> dict | None:
        return next((m["errorDetail"] for m in self.messages if "errorDetail" in m), None)

    @property
    def id(self) -> str:
        return next(m["aux"]["ID"] for m in self.messages if "aux" in m)


@pytest.fixture
def build(api):
    made: list[str] = []

    def run(files: dict, **query) -> Build:
        query.setdefault("rm", "1")
        reply = api.request("POST", "/build", query=query, body=context(files),
                            headers={"Content-Type": "application/x-tar"})
        result = Build(reply.status, reply.body)
        made.extend(m["aux"]["ID"] for m in result.messages if "aux" in m)
        made.extend(query.get("t", []) if isinstance(query.get("t"), list) else [query["t"]] if "t" in query else [])
        return result

    yield run
    for ref in reversed(made):
        api.delete(f"/images/{ref}", force="1")


def test_build_every_metadata_instruction_and_history(build, api):
    result = build({"Dockerfile": """
FROM busybox
ENV GREETING=hello NAME="big world"
LABEL app=trace
EXPOSE 8080 53/udp
VOLUME /data
USER nobody
WORKDIR /app
STOPSIGNAL SIGQUIT
ENTRYPOINT ["sh", "-c"]
CMD ["echo $GREETING"]
HEALTHCHECK --interval=5s --retries=3 CMD true
ONBUILD RUN echo triggered
"""}, t="bt-meta:v1")
    assert result.status == 200, result.body
    assert "Step 1/12 : FROM busybox\n" in result.text
    assert "Successfully tagged bt-meta:v1\n" in result.text
    image = api.get_json("/images/bt-meta:v1/json")
    cfg = image["Config"]
    assert "GREETING=hello" in cfg["Env"] and "NAME=big world" in cfg["Env"]
    assert cfg["Labels"]["app"] == "trace"
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert cfg["Volumes"] == {"/data": {}}
    assert (cfg["User"], cfg["WorkingDir"], cfg["StopSignal"]) == ("nobody", "/app", "SIGQUIT")
    assert cfg["Entrypoint"] == ["sh", "-c"] and cfg["Cmd"] == ["echo $GREETING"]
    assert cfg["OnBuild"] == ["RUN echo triggered"]
    history = api.get_json("/images/bt-meta:v1/history")
    created = [h["CreatedBy"] for h in history]
    assert "/bin/sh -c #(nop)  ENV GREETING=hello NAME=big world" in created
    assert "/bin/sh -c #(nop)  CMD [\"echo $GREETING\"]" in created
    assert "/bin/sh -c #(nop) WORKDIR /app" in created
    assert '/bin/sh -c #(nop)  HEALTHCHECK &{["CMD-SHELL" "true"] "5s" "0s" "0s" \'\\x03\'}' in created


def test_run_copy_and_cache(build, api):
    files = {"Dockerfile": "FROM busybox\nCOPY msg.txt /app/\nRUN cat /app/msg.txt > /app/copy.txt\nCMD cat /app/copy.txt\n",
             "msg.txt": "hello build\n"}
    first = build(files, t="bt-run")
    assert first.status == 200 and first.error is None, first.body
    assert " ---> Running in " in first.text and "Removing intermediate container" in first.text
    cid = api.run(["cat", "/app/copy.txt"], image="bt-run")
    api.post(f"/containers/{cid}/wait")
    logs = api.get(f"/containers/{cid}/logs", stdout=1).body
    api.delete(f"/containers/{cid}")
    assert b"hello build" in logs
    again = build(files, t="bt-run")
    assert again.text.count(" ---> Using cache") == 3 and again.id == first.id
    changed = build({**files, "msg.txt": "changed\n"}, t="bt-run")
    assert changed.text.count(" ---> Using cache") == 0 and changed.id != first.id
    nocache = build(files, nocache="1")
    assert " ---> Using cache" not in nocache.text


def test_failing_run_reports_the_exit_code(build, api):
    result = build({"Dockerfile": "FROM busybox\nRUN echo before && exit 7\n"}, forcerm="1")
    assert result.status == 200
    assert result.error == {"code": 7, "message": "The command '/bin/sh -c echo before && exit 7' returned a non-zero code: 7"}
    assert "before\n" in result.text


def test_parse_errors_are_400_naming_the_line(build):
    result = build({"Dockerfile": "FROM busybox\nFOO bar\n"})
    assert result.status == 400
    assert json.loads(result.body)["message"] == "Dockerfile parse error line 2: unknown instruction: FOO"
    missing = build({"Dockerfile": "FROM busybox\nCOPY nope.txt /x\n"})
    assert "nope.txt" in missing.error["message"]


def test_multi_stage_target_and_copy_from(build, api):
    files = {"Dockerfile": """
FROM busybox AS base
RUN echo base > /base.txt
FROM busybox AS unused
RUN exit 1
FROM busybox AS final
COPY --from=base /base.txt /got.txt
ARG WHO=nobody
RUN echo "$WHO" > /who.txt
""", ".dockerignore": "secret*\n", "secret.txt": "x"}
    result = build(files, t="bt-multi", buildargs=json.dumps({"WHO": "me"}))
    assert result.status == 200 and result.error is None, result.body
    assert "RUN exit 1" not in result.text
    history = [h["CreatedBy"] for h in api.get_json("/images/bt-multi/history")]
    assert '|1 WHO=me /bin/sh -c echo "$WHO" > /who.txt' in history
    target = build(files, target="base")
    assert target.error is None and "COPY --from" not in target.text


def test_steps_are_hidden_kept_by_prune_and_cached_across_it(build, api):
    files = {"Dockerfile": "FROM busybox\nRUN echo one > /one\nENV A=1\n"}
    first = build(files, t="bt-prune")
    assert first.error is None, first.body
    listed = {i["Id"] for i in api.get_json("/images/json")}
    history_ids = {h["Id"] for h in api.get_json("/images/bt-prune/history")} - {"<missing>"}
    assert first.id in listed and not (history_ids - {first.id}) & listed  # the steps are not listed
    assert api.post("/images/prune", filters=json.dumps({"dangling": {"true": True}})).status == 200
    again = build(files, t="bt-prune")
    assert again.text.count(" ---> Using cache") == 2 and again.id == first.id
    deleted = api.delete("/images/bt-prune").json()
    assert len([d for d in deleted if "Deleted" in d]) == 2  # the image and the RUN step below it


def test_client_going_away_cancels_the_run_step(api, daemon):
    import socket
    import time
    from urllib.parse import urlencode

    body = context({"Dockerfile": 'FROM busybox\nRUN echo "sta""rted"; sleep 60\n'})
    before = {c["Id"] for c in api.get_json("/containers/json", all="1")}
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(api.sock)
    sock.sendall(f"POST /build?{urlencode({'rm': 1})} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    seen = b""
    deadline = time.monotonic() + 30
    try:
        while b"started" not in seen and time.monotonic() < deadline:
            seen += sock.recv(65536)
        assert b"Running in" in seen
    finally:
        sock.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = {c["Id"] for c in api.get_json("/containers/json", all="1")}
        if now <= before:
            break
        time.sleep(0.2)
    assert now <= before, "the RUN container outlived its build"
