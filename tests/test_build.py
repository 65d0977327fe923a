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

    def run(files: dict, modes: dict[str, int] | None = None, **query) -> Build:
        query.setdefault("rm", "1")
        reply = api.request("POST", "/build", query=query, body=context(files, modes),
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
    # as dockerd's inspect: the health check without its zero durations; no Shell unless set
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 3}
    assert "Shell" not in cfg
    history = api.get_json("/images/bt-meta:v1/history")
    created = [h["CreatedBy"] for h in history]
    assert "/bin/sh -c #(nop)  ENV GREETING=hello NAME=big world" in created
    assert "/bin/sh -c #(nop)  CMD [\"echo $GREETING\"]" in created
    assert "/bin/sh -c #(nop) WORKDIR /app" in created
    assert '/bin/sh -c #(nop)  HEALTHCHECK &{["CMD-SHELL" "true"] "5s" "0s" "0s" \'\\x03\'}' in created


def test_shell_and_healthcheck_none_show_in_inspect(build, api):
    result = build({"Dockerfile": 'FROM busybox\nSHELL ["/bin/sh", "-xc"]\nHEALTHCHECK NONE\n'}, t="bt-shell:1")
    assert result.error is None, result.body
    cfg = api.get_json("/images/bt-shell:1/json")["Config"]
    assert (cfg["Shell"], cfg["Healthcheck"]) == (["/bin/sh", "-xc"], {"Test": ["NONE"]})


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
    history = api.get_json("/images/bt-prune/history")
    base = api.get_json("/images/busybox/json")["Id"]
    # as dockerd: each entry names its step's image while there is one here, the base last
    assert (history[0]["Id"], history[-1]["Id"], history[0]["Tags"]) == (first.id, base, ["bt-prune:latest"])
    steps = {h["Id"] for h in history} - {first.id, base}
    assert first.id in listed and len(steps) == 1 and not steps & listed  # the RUN step: not listed
    assert api.post("/images/prune", filters=json.dumps({"dangling": {"true": True}})).status == 200
    again = build(files, t="bt-prune")
    assert again.text.count(" ---> Using cache") == 2 and again.id == first.id
    deleted = api.delete("/images/bt-prune").json()
    # the image and the RUN step below it (and the layers they took with them)
    assert len([d for d in deleted if d.get("Deleted") in {first.id, *steps}]) == 2


def test_an_image_others_are_built_on_stays_while_they_do(build, api):
    parent = build({"Dockerfile": "FROM busybox\nRUN echo p > /p\n"}, t="bt-parent:1")
    child = build({"Dockerfile": "FROM bt-parent:1\nRUN echo c > /c\n"}, t="bt-child:1")
    assert parent.error is None and child.error is None
    for force in ("0", "1"):  # as dockerd: by ID, refused even forced
        reply = api.delete(f"/images/{parent.id}", force=force)
        assert reply.status == 409 and "image has dependent child images" in reply.message
    # by its last name: untagged only, the image stays for its child
    assert api.delete("/images/bt-parent:1").json() == [{"Untagged": "bt-parent:1"}]
    assert api.get(f"/images/{parent.id}/json").status == 200
    cid = api.run(["cat", "/p", "/c"], image="bt-child:1")
    assert api.wait(cid) == 0
    api.remove(cid)
    # --no-prune: the image goes, its untagged parents (the build's steps) stay
    build({"Dockerfile": "FROM busybox\nRUN echo a > /a\nRUN echo b > /b\n"}, t="bt-steps:1")
    step = api.get_json("/images/bt-steps:1/history")[1]["Id"]
    gone = api.delete("/images/bt-steps:1", noprune="1").json()
    assert [list(d) for d in gone][:2] == [["Untagged"], ["Deleted"]] and step not in [d.get("Deleted") for d in gone]
    assert api.get(f"/images/{step}/json").status == 200
    assert api.delete(f"/images/{step}").status == 200


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


def test_steps_without_a_process_show_their_container_as_docker_does(build, api):
    """Docker's classic builder makes a container for every step it commits: ENV, LABEL,
    WORKDIR, CMD… print ` ---> Running in <id>` and `Removing intermediate container
    <id>` and publish `create` and `destroy`; COPY prints neither; RUN adds its run."""
    import re
    import time

    since = time.time()
    result = build({"Dockerfile": "FROM busybox\nENV A=b\nLABEL bt-steps=yes\nWORKDIR /app\nCOPY msg.txt /app/\n"
                                  "RUN echo hi\nCMD [\"cat\", \"/app/msg.txt\"]\n", "msg.txt": "hello\n"},
                   t="bt-steps", nocache="1")
    assert result.status == 200 and result.error is None, result.body
    steps = re.split(r"Step \d/7 : ", result.text.partition("Successfully built")[0])[1:]
    for text in (steps[1], steps[2], steps[3], steps[6]):  # ENV, LABEL, WORKDIR, CMD
        match = re.fullmatch(r".*\n ---> Running in ([0-9a-f]{12})\nRemoving intermediate container \1\n"
                             r" ---> [0-9a-f]{12}\n", text)
        assert match, text
    assert "Running in" not in steps[4] and re.fullmatch(r"COPY msg.txt /app/\n ---> [0-9a-f]{12}\n", steps[4])
    assert re.fullmatch(r"RUN echo hi\n ---> Running in ([0-9a-f]{12})\nhi\nRemoving intermediate container \1\n"
                        r" ---> [0-9a-f]{12}\n", steps[5]), steps[5]
    until = time.time() + 0.5
    reply = api.get("/events", since=f"{since:.9f}", until=f"{until:.9f}",
                    filters=json.dumps({"type": ["container"], "label": ["bt-steps=yes"]}))
    actions = [json.loads(line)["Action"] for line in reply.body.splitlines() if line.strip()]
    # as dockerd's: LABEL's own container carries the label already, then WORKDIR, RUN, CMD
    assert actions.count("create") == 4 and actions.count("destroy") == 4, actions
    assert "start" in actions and "die" in actions  # RUN's only
    cached = build({"Dockerfile": "FROM busybox\nENV A=b\n"})
    assert "Running in" not in cached.text and " ---> Using cache" in cached.text
    assert not [c for c in api.get_json("/containers/json", all="1") if c["Labels"].get("bt-steps")]


def test_images_all_lists_the_build_steps(build, api):
    result = build({"Dockerfile": "FROM busybox\nENV STEP=1\nRUN echo x > /x\nENV STEP=2\n"}, t="bt-all")
    assert result.error is None, result.body
    history = [h["Id"] for h in api.get_json("/images/bt-all/history") if h["Id"] != "<missing>"]
    plain = {i["Id"] for i in api.get_json("/images/json")}
    every = [i for i in api.get_json("/images/json", all="1")]
    ids = [i["Id"] for i in every]
    assert len(ids) == len(set(ids)) and set(history) <= set(ids)
    assert set(history) - plain == set(history[1:-1])  # the steps between busybox and the tag
    steps = [i for i in every if i["Id"] in set(history[1:-1])]
    assert all(i["RepoTags"] in ([], ["<none>:<none>"], None) for i in steps), steps


def test_a_big_unchanged_file_is_not_hashed_again(tmp_path):
    """COPY's checksum of an unchanged big file comes from memory (`Sums`); a change the
    key sees (size, mtime, sampled bytes) is hashed again, and fresh files never count."""
    import os
    import time

    from engine.build import context

    root = tmp_path / "ctx"
    root.mkdir()
    big = root / "big.bin"
    big.write_bytes(b"a" * (1 << 20))
    old = time.time_ns() - 10 * 10**9
    os.utime(big, ns=(old, old))
    sums = context.Sums()
    now = time.time_ns()
    entries = context.plan(root, ["big.bin"], False, "big.bin", "COPY")
    first = context.checksum(entries, None, "file", sums, root, now)
    assert sums.hashed == 1 << 20
    assert context.checksum(entries, None, "file", sums, root, now) == first and sums.hashed == 1 << 20
    with open(big, "r+b") as f:  # same size and mtime, a byte changed in a sampled place
        f.seek((1 << 19) - 1)
        f.write(b"b")
    os.utime(big, ns=(old, old))
    entries = context.plan(root, ["big.bin"], False, "big.bin", "COPY")
    assert context.checksum(entries, None, "file", sums, root, now) != first and sums.hashed == 2 << 20
    fresh = time.time_ns()
    os.utime(big, ns=(fresh, fresh))  # racy: changed within 2 s of the build, never remembered
    entries = context.plan(root, ["big.bin"], False, "big.bin", "COPY")
    context.checksum(entries, None, "file", sums, root, now)
    context.checksum(entries, None, "file", sums, root, now)
    assert sums.hashed == 4 << 20


def _output(api, image: str, script: str) -> str:
    cid = api.run(["sh", "-c", script], image=image)
    api.wait(cid)
    out = b"".join(data for _, data in api.logs(cid)).decode()
    api.delete(f"/containers/{cid}", force="1")
    return out


def _tgz(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return buf.getvalue()


def test_copy_add_flags_wildcards_archives_and_escapes(build, api):
    files = {"Dockerfile": """
FROM busybox
COPY --chown=nobody:nogroup --chmod=0750 tool.sh /opt/bin/
COPY *.txt /txt/
COPY dir /tree
COPY ../../msg.txt /etc/../up.txt
COPY link-out /link-out
ADD pack.tgz /unpacked/
COPY pack.tgz /kept/
""", "tool.sh": "echo tool\n", "a.txt": "A\n", "b.txt": "B\n", "msg.txt": "M\n", "dir/": "",
        "dir/sub/": "", "dir/sub/deep.txt": "D\n", "pack.tgz": _tgz({"inside/one.txt": "1\n"})}
    body = io.BytesIO(context(files))
    raw = body.getvalue()
    # a symlink pointing out of the context resolves inside it: /etc/hostname is no context file
    buf = io.BytesIO(raw[:-1024])
    with tarfile.open(fileobj=buf, mode="a") as tar:
        link = tarfile.TarInfo("link-out")
        link.type, link.linkname = tarfile.SYMTYPE, "/msg.txt"
        tar.addfile(link)
    reply = api.request("POST", "/build", query={"t": "bt-copy"}, body=buf.getvalue(),
                        headers={"Content-Type": "application/x-tar"})
    result = Build(reply.status, reply.body)
    try:
        assert result.status == 200 and result.error is None, result.body
        out = _output(api, "bt-copy", "stat -c '%U:%G %a' /opt/bin/tool.sh; ls /txt; cat /tree/sub/deep.txt /up.txt "
                                       "/link-out /unpacked/inside/one.txt; ls /kept")
        assert out.split("\n") == ["nobody:nogroup 750", "a.txt", "b.txt", "msg.txt", "D", "M", "M", "1", "pack.tgz", ""], out
        escape = build({"Dockerfile": "FROM busybox\nCOPY /../../etc/shadow /x\n"})
        assert escape.error and "etc/shadow" in escape.error["message"], escape.body
        several = build({"Dockerfile": "FROM busybox\nCOPY a.txt b.txt /notadir\n", "a.txt": "", "b.txt": ""})
        assert several.error and "must be a directory and end with a /" in several.error["message"]
    finally:
        api.delete("/images/bt-copy", force="1")
        if result.status == 200 and result.messages and any("aux" in m for m in result.messages):
            api.delete(f"/images/{result.id}", force="1")


def test_copy_destinations_follow_symlinks_and_owners_are_dockerds(build, api):
    """As dockerd's classic builder: a destination that is a symlink is followed (to a
    directory: into it; to a file: written through), a wildcard matching one file may
    name a file, --from keeps owners, --chown=UID means UID:UID and owns the directories
    it makes, and files from the context lose setuid/setgid (dockerd chowns them)."""
    result = build({"Dockerfile": """
FROM busybox AS stage
RUN mkdir /p && echo x > /p/f && chown 5:6 /p/f && chmod 4755 /p/f && mkdir /p/sub && chown 7:8 /p/sub
FROM busybox
RUN mkdir -p /real /usr/lib && ln -s /real /w && ln -s usr/lib /lib2 && echo old > /tfile && ln -s /tfile /t
WORKDIR /w
COPY c.txt .
COPY c.txt /lib2
COPY c.txt /t
COPY target/*.jar app.jar
COPY --from=stage /p /p
COPY --chown=1001 c.txt /o1/deep/
COPY --chown=7:8 d /dd
COPY d /d
""", "c.txt": "new\n", "target/": "", "target/app-1.0.jar": "jar\n", "d/": "", "d/s": "s\n", "d/g": "g\n"},
        modes={"d/s": 0o4755, "d/g": 0o2711}, t="bt-copydest")
    assert result.error is None, result.body
    out = _output(api, "bt-copydest", "cd /; ls -l lib2 t | cut -c1; cat real/c.txt usr/lib/c.txt tfile "
                                      "real/app.jar; stat -c '%n %u:%g %a' /p/f /p/sub /o1 /o1/deep "
                                      "/o1/deep/c.txt /dd /dd/s /d/s /d/g")
    assert out.split("\n") == ["l", "l", "new", "new", "new", "jar", "/p/f 5:6 4755", "/p/sub 7:8 755",
                                "/o1 1001:1001 755", "/o1/deep 1001:1001 755", "/o1/deep/c.txt 1001:1001 644",
                                "/dd 7:8 755", "/dd/s 7:8 755", "/d/s 0:0 755", "/d/g 0:0 711", ""], out


def test_copy_onto_a_file_fails_the_build_with_dockerds_error(build):
    """An error inside a step after the stream began is its errorDetail, never a bare message
    (the docker CLI would exit 0 on that)."""
    for step in ("WORKDIR /f", "COPY c.txt /f/", "COPY c.txt /f/x"):
        result = build({"Dockerfile": f"FROM busybox\nRUN touch /f\n{step}\n", "c.txt": ""})
        assert result.error == {"message": "Cannot mkdir: /f is not a directory"}, (step, result.body)


def test_dockerfiles_dockerd_takes(build, api):
    """A BOM, a tab after the keyword, SIGRTMIN+3, EXPOSE's other spellings, a bare
    ENTRYPOINT, ENV replacing in place, one ARG line one history entry."""
    result = build({"Dockerfile": "\ufeffFROM\tbusybox\nENV A=1 B=2\nENV A=3\nARG x y=2\n"
                                  "EXPOSE 9090/UDP 127.0.0.1:8080:80 :81\nSTOPSIGNAL SIGRTMIN+3\n"
                                  "ENTRYPOINT [\"sh\"]\nENTRYPOINT\nRUN\techo tab\n"}, t="bt-spellings")
    assert result.error is None, result.body
    config = api.get("/images/bt-spellings/json").json()["Config"]
    assert config["Env"][1:] == ["A=3", "B=2"] and config["StopSignal"] == "SIGRTMIN+3"
    assert sorted(config["ExposedPorts"]) == ["80/tcp", "81/tcp", "9090/udp"] and not config.get("Entrypoint")
    history = [h["CreatedBy"] for h in api.get("/images/bt-spellings/history").json()]
    assert sum("ARG x y=2" in h for h in history) == 1, history
    for bad, message in (("EXPOSE 99999", "invalid containerPort"), ("HEALTHCHECK --retries=0 CMD true", "at least 1"),
                         ("COPY --chown c.txt /x", "Missing a value on flag: chown"), ("LABEL a", "two arguments"),
                         ("HEALTHCHECK CMD", "Missing command")):
        refused = build({"Dockerfile": f"FROM busybox\n{bad}\n", "c.txt": ""})
        assert refused.status == 400 or refused.error, bad
        assert message in (refused.body.decode() if refused.status == 400 else refused.error["message"]), refused.body


def test_build_options_dockerd_refuses_or_applies(build, api):
    for query, message in (({"isolation": "hyperv"}, "Unsupported isolation"),
                           ({"securityopt": '["seccomp=unconfined"]'}, "security options"),
                           ({"cgroupparent": "x"}, "cgroup-parent")):
        refused = build({"Dockerfile": "FROM busybox\n"}, **query)
        assert refused.status == 400 and message in refused.body.decode(), refused.body
    limited = build({"Dockerfile": "FROM busybox\nRUN ulimit -n > /n\n"}, t="bt-ulimit",
                    ulimits='[{"Name": "nofile", "Soft": 100, "Hard": 200}]')
    assert limited.error is None, limited.body
    assert _output(api, "bt-ulimit", "cat /n") == "100\n"


def test_a_dockerignore_link_is_read_inside_the_context(api, tmp_path):
    """A `.dockerignore` that links to a host file reads nothing of the host (the file it
    names is resolved inside the context, where there is none)."""
    secret = tmp_path / "ignore-src"
    secret.write_text("TOPSECRET\n")
    buf = io.BytesIO(context({"Dockerfile": "FROM busybox\nCOPY . /c\n", "TOPSECRET": "t", "NOTSECRET": "n"}))
    raw = buf.getvalue()[:-1024]
    buf = io.BytesIO(raw)
    with tarfile.open(fileobj=buf, mode="a") as tar:
        link = tarfile.TarInfo(".dockerignore")
        link.type, link.linkname = tarfile.SYMTYPE, str(secret)
        tar.addfile(link)
    reply = api.request("POST", "/build", query={"t": "bt-ignorelink"}, body=buf.getvalue(),
                        headers={"Content-Type": "application/x-tar"})
    result = Build(reply.status, reply.body)
    try:
        assert result.error is None, result.body
        assert "TOPSECRET" in _output(api, "bt-ignorelink", "ls /c").split()
    finally:
        api.delete("/images/bt-ignorelink", force="1")


def test_add_from_a_url_on_this_host_only(build, api, tmp_path):
    import functools
    import http.server
    import threading

    (tmp_path / "served.txt").write_text("from loopback\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/served.txt"
        result = build({"Dockerfile": f"FROM busybox\nADD {url} /got/\n"}, t="bt-url")
        assert result.error is None, result.body
        assert _output(api, "bt-url", "stat -c %a /got/served.txt; cat /got/served.txt") == "600\nfrom loopback\n"
    finally:
        server.shutdown()
    off = build({"Dockerfile": "FROM busybox\nADD http://example.com/file /file\n"})
    assert off.error and "on this host only" in off.error["message"] and "nothing leaves this host" in \
        off.error["message"], off.body
    copy = build({"Dockerfile": "FROM busybox\nCOPY http://127.0.0.1/x /x\n"})
    assert copy.error and "COPY does not take URLs" in copy.error["message"]


def test_onbuild_scratch_platform_and_cache_from(build, api):
    base = build({"Dockerfile": "FROM busybox\nONBUILD RUN echo triggered > /trig\n"}, t="bt-onbuild")
    assert base.error is None, base.body
    child = build({"Dockerfile": "FROM bt-onbuild\nCMD cat /trig\n"}, t="bt-child")
    assert "# Executing 1 build trigger" in child.text and child.error is None, child.body
    assert _output(api, "bt-child", "cat /trig") == "triggered\n"
    assert api.get_json("/images/bt-child/json")["Config"]["OnBuild"] in (None, [])
    scratch = build({"Dockerfile": "FROM scratch\nCOPY a.txt /a.txt\nENV X=1 P=/x:$PATH\n", "a.txt": "A\n"})
    assert scratch.error is None, scratch.body
    shown = api.get_json(f"/images/{scratch.id}/json")
    assert len(shown["RootFS"]["Layers"]) == 1
    # as dockerd's builder: a base without PATH gets the default one at FROM
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert shown["Config"]["Env"] == [f"PATH={path}", "X=1", f"P=/x:{path}"]
    assert build({"Dockerfile": "FROM busybox\n"}, platform="windows/amd64").status == 400
    files = {"Dockerfile": "FROM busybox\nRUN echo cf > /cf\n"}
    first = build(files, t="bt-cf")
    assert first.error is None
    other = build(files, cachefrom=json.dumps(["bt-child"]))  # not built from bt-cf: no cache
    assert " ---> Using cache" not in other.text and other.id != first.id
    same = build(files, cachefrom=json.dumps(["bt-cf"]))
    assert " ---> Using cache" in same.text and same.id == first.id


def test_cache_from_an_image_loaded_without_its_parents(build, api):
    """The CI pattern (pull or load, then --cache-from): the image's history stands for
    the steps, as dockerd's image cache reads it; every step hits, the result is that image."""
    files = {"Dockerfile": "FROM busybox\nENV X=1\nRUN echo hi > /hi\nCOPY f.txt /f.txt\nLABEL a=b\n",
             "f.txt": "data\n"}
    first = build(files, t="bt-cfload")
    assert first.error is None, first.body
    saved = api.get("/images/get", names=["bt-cfload"]).body
    api.delete("/images/bt-cfload")  # with the steps it was built on
    assert api.get(f"/images/{first.id}/json").status == 404
    loaded = api.request("POST", "/images/load", body=saved, headers={"Content-Type": "application/x-tar"})
    assert loaded.status == 200, loaded.body
    again = build(files, cachefrom=json.dumps(["bt-cfload"]))
    assert again.text.count(" ---> Using cache") == 4 and again.id == first.id, again.text
    changed = build({**files, "Dockerfile": files["Dockerfile"] + "RUN echo more\n"},
                    cachefrom=json.dumps(["bt-cfload"]))
    assert changed.text.count(" ---> Using cache") == 4 and changed.error is None, changed.text
    assert _output(api, changed.id, "cat /hi /f.txt") == "hi\ndata\n"


def test_a_gzip_context_and_a_dockerfile_alone(api):
    import gzip

    made = []
    try:
        for body in (gzip.compress(context({"Dockerfile": "FROM busybox\nCOPY a.txt /a.txt\n", "a.txt": "A"})),
                     b"FROM busybox\nENV ALONE=1\n"):
            reply = api.request("POST", "/build", body=body, headers={"Content-Type": "application/x-tar"})
            result = Build(reply.status, reply.body)
            assert result.status == 200 and result.error is None, result.body
            made.append(result.id)
        assert "ALONE=1" in api.get_json(f"/images/{made[1]}/json")["Config"]["Env"]
        cut = context({"Dockerfile": "FROM busybox\n", "big.bin": b"x" * 5000})[:3000]  # a truncated upload
        reply = api.request("POST", "/build", body=cut, headers={"Content-Type": "application/x-tar"})
        assert reply.status == 400 and b"truncated" in reply.body, reply.body
    finally:
        for image in made:
            api.delete(f"/images/{image}", force="1")


def test_build_steps_leave_no_anonymous_volume(build, api):
    """Intermediate containers made from an image with VOLUME go with their anonymous
    volumes, as dockerd removes its builder's containers (`RemoveVolume`)."""
    before = {v["Name"] for v in api.get_json("/volumes")["Volumes"] or []}
    result = build({"Dockerfile": "FROM busybox\nVOLUME /data\nENV A=1\nRUN echo x > /x\nCMD true\n"}, nocache="1")
    assert result.error is None, result.body
    after = {v["Name"] for v in api.get_json("/volumes")["Volumes"] or []}
    assert after <= before, after - before


def test_the_cache_survives_a_daemon_restart(fresh_daemon):
    """The cache index is on disk: a daemon started again (SIGTERM, or kill -9) builds the
    same Dockerfile and context from its cache, step by step."""
    import signal

    d = fresh_daemon()
    files = {"Dockerfile": "FROM busybox\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt > /copy\nCMD [\"cat\", \"/copy\"]\n",
             "hello.txt": "cached across restarts\n"}

    def build_once() -> Build:
        reply = d.api.request("POST", "/build", query={"t": "bt-restart:1", "rm": "1"}, body=context(files),
                              headers={"Content-Type": "application/x-tar"})
        return Build(reply.status, reply.body)

    first = build_once()
    assert first.status == 200 and first.error is None, first.body
    for stop in (lambda: d.stop(), lambda: d.stop(signal.SIGKILL)):
        stop()
        d.start()
        again = build_once()
        assert again.status == 200 and again.error is None, again.body
        assert again.text.count(" ---> Using cache\n") == 3 and again.id == first.id, again.text
