"""Registries: pull, push and login against Debian's docker-registry on 127.0.0.1.

Two registries run for the module, each a `docker-registry serve` of its own (storage in
a scratch directory, stopped by its PID): one with htpasswd basic auth, one with token
auth whose token server is written here (PyJWT, a test RSA key and a self-signed
certificate in the registry's rootcertbundle). Nothing reaches outside this machine.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.dockerd import DockerdUnavailable, PrivateDockerd
from tests.registry_server import Registry, free_port

pytestmark = pytest.mark.skipif(not (shutil.which("docker-registry") and shutil.which("htpasswd")),
                                reason="docker-registry and htpasswd are not installed (make install)")

USER, PASSWORD = "berth", "s3cret-pass"
REPO = Path(__file__).resolve().parent.parent


def auth_header(user: str = USER, password: str = PASSWORD, server: str = "") -> dict[str, str]:
    raw = json.dumps({"username": user, "password": password, "serveraddress": server}).encode()
    return {"X-Registry-Auth": base64.urlsafe_b64encode(raw).decode()}


@pytest.fixture(scope="module")
def registry():
    work = Path(tempfile.mkdtemp(prefix="berth-registry-"))
    line = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], capture_output=True, check=True).stdout
    (work / "htpasswd").write_bytes(line)
    r = Registry(f"""auth:
  htpasswd:
    realm: berth-test
    path: {work / 'htpasswd'}
""", work)
    yield r
    r.stop()


class TokenServer:
    """The token endpoint of a registry with `auth: token`: Basic credentials in, a JWT
    out, signed by a test RSA key whose self-signed certificate the registry trusts."""

    def __init__(self, work: Path, service: str, issuer: str):
        import jwt  # the test extra (pyjwt)
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth test token signer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        self.cert_path = work / "token-cert.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        self.issued = 0
        self.expires_in = 300
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                from urllib.parse import parse_qs, urlsplit
                query = parse_qs(urlsplit(self.path).query)
                given = self.headers.get("Authorization", "")
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if given != expected:
                    body = json.dumps({"details": "incorrect username or password"}).encode()
                    self.send_response(401)
                else:
                    access = []
                    for scope in query.get("scope", []):
                        kind, repo, actions = scope.split(":")
                        access.append({"type": kind, "name": repo, "actions": actions.split(",")})
                    stamp = int(time.time())
                    claims = {"iss": issuer, "sub": USER, "aud": service, "iat": stamp, "nbf": stamp - 10,
                              "exp": stamp + server.expires_in, "jti": secrets.token_hex(8), "access": access}
                    token = jwt.encode(claims, key_pem, algorithm="RS256", headers={"x5c": x5c})
                    server.issued += 1
                    body = json.dumps({"token": token, "expires_in": server.expires_in}).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def token_registry():
    pytest.importorskip("jwt")
    work = Path(tempfile.mkdtemp(prefix="berth-registry-token-"))
    tokens = TokenServer(work, "berth-test-registry", "berth-test-issuer")
    r = Registry(f"""auth:
  token:
    realm: {tokens.realm}
    service: berth-test-registry
    issuer: berth-test-issuer
    rootcertbundle: {tokens.cert_path}
""", work)
    r.tokens = tokens
    yield r
    r.stop()
    tokens.stop()


@pytest.fixture(scope="module", autouse=True)
def forget_pushed_images(daemon):
    """The session daemon is shared: the images made here for registries go afterwards."""
    yield
    api = daemon.api
    for image in api.get_json("/images/json"):
        for name in (image["RepoTags"] or []) + (image["RepoDigests"] or []):
            if name.startswith("127.0.0.1:"):
                api.delete(f"/images/{name}", force=1)


def messages(reply) -> list[dict]:
    return [json.loads(line) for line in reply.body.splitlines() if line.strip()]


def statuses(reply) -> list[str]:
    return [m.get("status", "") for m in messages(reply)]


def pull(api, name: str, tag: str = "", headers: dict | None = None, **query):
    q = {"fromImage": name, **({"tag": tag} if tag else {}), **query}
    return api.request("POST", "/images/create", query=q, headers=headers or auth_header())


def push(api, name: str, tag: str = "", headers: dict | None = None):
    return api.request("POST", f"/images/{name}/push", query={"tag": tag} if tag else None,
                       headers=headers or auth_header())


def commit_image(api, repo: str, tag: str, script: str) -> str:
    """An image of busybox plus one layer made by `script` (never pulled: built here)."""
    cid = api.run(["sh", "-c", script])
    assert api.wait(cid) == 0
    reply = api.post("/commit", container=cid, repo=repo, tag=tag, changes='CMD ["cat", "/hello.txt"]')
    assert reply.status == 201, reply.body
    api.remove(cid)
    return reply.json()["Id"]


def layer_count(d) -> int:
    return len(list((d.root / "images" / "layers").iterdir()))


# --- the API ---------------------------------------------------------------------------


def test_push_then_pull_into_a_fresh_daemon_and_run(api, registry, fresh_daemon):
    name = f"{registry.host}/app"
    image_id = commit_image(api, name, "v1", "echo pushed > /hello.txt")
    reply = push(api, name, "v1")
    assert reply.status == 200, reply.body
    got = messages(reply)
    assert got[0] == {"status": f"The push refers to repository [{name}]"}
    assert {"Preparing", "Pushed"} <= {m.get("status") for m in got}
    assert not [m for m in got if "error" in m], got
    aux = [m["aux"] for m in got if "aux" in m][0]
    assert aux["Tag"] == "v1" and f"v1: digest: {aux['Digest']} size: {aux['Size']}" in statuses(reply)
    inspect = api.get_json(f"/images/{name}:v1/json")
    assert inspect["RepoDigests"] == [f"{name}@{aux['Digest']}"]
    assert inspect["RepoTags"] == [f"{name}:v1"]

    other = fresh_daemon()
    base_layers = layer_count(other)
    reply = pull(other.api, name, "v1")
    assert reply.status == 200, reply.body
    said = statuses(reply)
    assert said[0] == "Pulling from app" and said[-2:] == [f"Digest: {aux['Digest']}",
                                                         f"Status: Downloaded newer image for {name}:v1"]
    assert "Already exists" in said  # busybox's layer: the fresh daemon has it built in
    for step in ("Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete", "Extracting",
                 "Pull complete"):
        assert step in said, said
    downloading = [m for m in messages(reply) if m.get("status") == "Downloading"]
    assert downloading[-1]["progressDetail"]["current"] == downloading[-1]["progressDetail"]["total"] > 0
    assert layer_count(other) == base_layers + 1
    pulled = other.api.get_json(f"/images/{name}:v1/json")
    assert pulled["Id"] == image_id and pulled["RepoDigests"] == [f"{name}@{aux['Digest']}"]
    cid = other.api.run([], image=f"{name}:v1")
    assert other.api.wait(cid) == 0 and other.api.logs(cid) == [(1, b"pushed\n")]
    other.api.remove(cid)

    again = pull(other.api, name, "v1")
    assert statuses(again)[-1] == f"Status: Image is up to date for {name}:v1"
    assert "Downloading" not in statuses(again)

    by_digest = f"{name}@{aux['Digest']}"
    assert other.api.delete(f"/images/{name}:v1").status == 200
    reply = pull(other.api, by_digest)
    assert statuses(reply)[-1] == f"Status: Downloaded newer image for {by_digest}"
    listed = [i for i in other.api.get_json("/images/json") if i["Id"] == image_id][0]
    assert listed["RepoDigests"] == [by_digest] and listed["RepoTags"] == ["<none>:<none>"]
    cid = other.api.run([], image=by_digest)
    assert other.api.wait(cid) == 0
    other.api.remove(cid)
    events = other.api.get("/events", since="0", until=f"{time.time():.3f}",
                           filters=json.dumps({"event": ["pull"]}))
    pulled_events = [json.loads(line) for line in events.body.splitlines()]
    assert [e["Actor"]["ID"] for e in pulled_events] == [f"{name}:v1", f"{name}:v1", by_digest]


def test_second_push_compresses_nothing(api, registry, daemon):
    name = f"{registry.host}/twice"
    commit_image(api, name, "1", "echo twice > /hello.txt")
    assert push(api, name, "1").status == 200
    blobs = sorted((daemon.root / "images" / "layers").glob("*/layer.tar.gz"))
    stamps = [b.stat().st_mtime_ns for b in blobs]
    api.post(f"/images/{name}:1/tag", repo=f"{registry.host}/twice-copy", tag="1")
    # another repository of the same registry: both blobs are mounted from the first
    # (cross-repository mount), nothing is sent or compressed again
    said = statuses(push(api, f"{registry.host}/twice-copy", "1"))
    assert said.count("Mounted from twice") == 2 and "Pushed" not in said, said
    assert [b.stat().st_mtime_ns for b in blobs] == stamps
    said = statuses(push(api, f"{registry.host}/twice-copy", "1"))
    assert said.count("Layer already exists") == 2 and "Pushed" not in said  # HEAD: the registry has them


def test_missing_manifest_is_a_404(api, registry):
    reply = pull(api, f"{registry.host}/nope", "v1")
    assert reply.status == 404
    assert reply.json()["message"] == f"manifest for {registry.host}/nope:v1 not found: manifest unknown: manifest unknown"


def test_corrupted_blob_is_refused_and_nothing_is_stored(api, registry, fresh_daemon):
    name = f"{registry.host}/corrupt"
    commit_image(api, name, "1", "head -c 200000 /dev/urandom > /hello.txt")
    got = messages(push(api, name, "1"))
    top = api.get_json(f"/images/{name}:1/json")["RootFS"]["Layers"][-1]
    other = fresh_daemon()
    before_layers, before_images = layer_count(other), other.api.get_json("/images/json")
    # the registry's copy of the top layer: the one blob the fresh daemon lacks
    manifest_digest = [m["aux"]["Digest"] for m in got if "aux" in m][0]
    manifest = json.loads(registry.blob_file(manifest_digest).read_bytes())
    blob = manifest["layers"][-1]["digest"]
    data = bytearray(registry.blob_file(blob).read_bytes())
    data[len(data) // 2] ^= 0xFF
    registry.blob_file(blob).write_bytes(bytes(data))
    reply = pull(other.api, name, "1")
    assert reply.status == 200
    last = messages(reply)[-1]
    assert last["error"] == f"filesystem layer verification failed for digest {blob}", last
    assert other.api.get_json("/images/json") == before_images
    assert layer_count(other) == before_layers
    assert list((other.root / "images" / "tmp").iterdir()) == []
    assert other.api.get(f"/images/{name}:1/json").status == 404
    assert top  # (the layer berth would have unpacked)
    registry.blob_file(blob).write_bytes(bytes(data[: len(data) // 3]))  # truncated now
    last = messages(pull(other.api, name, "1"))[-1]
    assert last["error"] == f"filesystem layer verification failed for digest {blob}"
    assert layer_count(other) == before_layers


def test_unreachable_registry_fails_fast(api):
    port = free_port()  # nothing listens there
    started = time.monotonic()
    reply = pull(api, f"127.0.0.1:{port}/x", "1")
    assert time.monotonic() - started < 5
    assert reply.status == 500 and f"127.0.0.1:{port} is unreachable" in reply.json()["message"]


def test_pull_by_digest_in_tag_every_tag_and_each_digest_kept(api, registry, fresh_daemon):
    """As the docker CLI and docker-py send them: a digest in `tag=`, no tag at all (every
    tag, as dockerd), `--platform linux`; every digest an image was pulled by is kept,
    and the last tag of a repository takes its digests with it."""
    name = f"{registry.host}/alltags"
    commit_image(api, name, "a", "echo a > /hello.txt")
    api.post(f"/images/{name}:a/tag", repo=name, tag="b")
    digest = [m["aux"]["Digest"] for m in messages(push(api, name, "a")) if "aux" in m][0]
    assert push(api, name, "b").status == 200
    other = fresh_daemon()
    by_digest = pull(other.api, name, digest, platform="linux")
    assert by_digest.status == 200 and statuses(by_digest)[-1] == f"Status: Downloaded newer image for {name}@{digest}"
    every = pull(other.api, name)
    assert every.status == 200 and not [m for m in messages(every) if "error" in m], every.body
    tags = other.api.get_json(f"/images/{name}:a/json")["RepoTags"]
    assert sorted(tags) == [f"{name}:a", f"{name}:b"]
    # a second digest of the same image and repository (another manifest of it) is kept beside the first
    manifest = json.loads(registry.blob_file(digest).read_bytes())
    manifest["annotations"] = {"second": "manifest"}
    body = json.dumps(manifest).encode()
    import urllib.request
    request = urllib.request.Request(f"http://{registry.host}/v2/alltags/manifests/c", data=body, method="PUT",
                                     headers={"Content-Type": manifest["mediaType"],
                                              "Authorization": "Basic " + base64.b64encode(
                                                  f"{USER}:{PASSWORD}".encode()).decode()})
    second = urllib.request.urlopen(request).headers["Docker-Content-Digest"]
    assert pull(other.api, name, "c").status == 200
    digests = other.api.get_json(f"/images/{name}:a/json")["RepoDigests"]
    assert sorted(digests) == sorted([f"{name}@{digest}", f"{name}@{second}"])
    for tag in ("a", "b"):
        other.api.delete(f"/images/{name}:{tag}")
    removed = other.api.delete(f"/images/{name}:c").json()
    assert {"Untagged": f"{name}@{digest}"} in removed and any("Deleted" in r for r in removed), removed


def test_distribution_inspect_reads_the_registry(api, registry):
    """docker-py's `get_registry_data`: the manifest's descriptor and the image's platform."""
    name = f"{registry.host}/distinfo"
    commit_image(api, name, "v1", "echo d > /hello.txt")
    digest = [m["aux"]["Digest"] for m in messages(push(api, name, "v1")) if "aux" in m][0]
    reply = api.request("GET", f"/distribution/{name}:v1/json", headers=auth_header())
    assert reply.status == 200, reply.body
    found = reply.json()
    assert found["Descriptor"]["digest"] == digest and found["Descriptor"]["size"] > 0
    assert found["Platforms"] == [{"architecture": "amd64", "os": "linux"}] or found["Platforms"][0]["os"] == "linux"
    assert api.request("GET", f"/distribution/{name}:nope/json", headers=auth_header()).status == 404


def test_push_of_a_missing_image_is_the_streams_error(api, registry):
    reply = push(api, f"{registry.host}/never-made", "v1")
    assert reply.status == 200
    assert messages(reply)[-1]["error"] == f"An image does not exist locally with the tag: {registry.host}/never-made"


def test_a_bad_registry_auth_header_is_no_credentials(api, registry):
    reply = pull(api, f"{registry.host}/nope", "v1", headers={"X-Registry-Auth": "!!junk"})
    assert reply.status == 500 and "no basic auth credentials" in reply.json()["message"], reply.body
    capitalised = base64.urlsafe_b64encode(json.dumps({"Username": USER, "Password": PASSWORD}).encode()).decode()
    assert pull(api, f"{registry.host}/nope", "v1", headers={"X-Registry-Auth": capitalised}).status == 404


def test_other_platform_is_refused(api, registry):
    reply = pull(api, f"{registry.host}/app", "v1", platform="linux/s390x")
    assert reply.status == 400 and "linux/s390x" in reply.json()["message"]


def test_login_and_push_without_credentials(api, registry):
    good = api.post("/auth", {"username": USER, "password": PASSWORD, "serveraddress": registry.host})
    assert good.status == 200 and good.json()["Status"] == "Login Succeeded"
    bad = api.post("/auth", {"username": USER, "password": "wrong", "serveraddress": registry.host})
    assert bad.status == 401
    assert bad.json()["message"] == f"login attempt to http://{registry.host}/v2/ failed with status: 401 Unauthorized"
    api.post("/images/busybox/tag", repo=f"{registry.host}/noauth", tag="1")
    reply = push(api, f"{registry.host}/noauth", "1", headers={"X-Registry-Auth": "e30="})
    assert reply.status == 200 and messages(reply)[-1]["error"] == "no basic auth credentials"


def test_token_auth_push_pull_and_login(api, token_registry, fresh_daemon):
    host = token_registry.host
    bad = api.post("/auth", {"username": USER, "password": "wrong", "serveraddress": host})
    assert bad.status == 401 and "incorrect username or password" in bad.json()["message"]
    assert api.post("/auth", {"username": USER, "password": PASSWORD, "serveraddress": host}).json()["Status"] \
        == "Login Succeeded"
    name = f"{host}/tok"
    image_id = commit_image(api, name, "1", "echo token > /hello.txt")
    issued = token_registry.tokens.issued
    reply = push(api, name, "1")
    assert not [m for m in messages(reply) if "error" in m], messages(reply)
    assert token_registry.tokens.issued - issued == 1  # one token, cached for every request of the push
    other = fresh_daemon()
    reply = pull(other.api, name, "1")
    assert statuses(reply)[-1] == f"Status: Downloaded newer image for {name}:1", messages(reply)
    assert other.api.get_json(f"/images/{name}:1/json")["Id"] == image_id
    denied = pull(other.api, name, "1", headers={"X-Registry-Auth": "e30="})
    # a 500, as dockerd: on a 401 the docker CLI would prompt for a login (and hang without a terminal)
    assert denied.status == 500 and "incorrect username or password" in denied.json()["message"]


# --- the CLIs ------------------------------------------------------------------------


@pytest.fixture
def cli_env(daemon, tmp_path):
    return {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(tmp_path / "docker-config")}


def berth(env, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shell.cli", "-H", env["DOCKER_HOST"], *args], env=env, cwd=REPO,
                          capture_output=True, input=input, timeout=60)


def test_berth_cli_login_push_pull_logout(api, registry, cli_env):
    name = f"{registry.host}/cli"
    commit_image(api, name, "1", "echo cli > /hello.txt")
    bad = berth(cli_env, "login", "-u", USER, "-p", "wrong", registry.host)
    assert bad.returncode == 1 and b"401 Unauthorized" in bad.stderr
    done = berth(cli_env, "login", "-u", USER, "--password-stdin", registry.host, input=PASSWORD.encode() + b"\n")
    assert done.returncode == 0 and done.stdout.endswith(b"Login Succeeded\n"), done.stderr
    config = json.loads((Path(cli_env["DOCKER_CONFIG"]) / "config.json").read_text())
    assert base64.b64decode(config["auths"][registry.host]["auth"]).decode() == f"{USER}:{PASSWORD}"
    pushed = berth(cli_env, "push", f"{name}:1")
    assert pushed.returncode == 0, pushed.stderr
    assert f"The push refers to repository [{name}]".encode() in pushed.stdout
    assert b"1: digest: sha256:" in pushed.stdout
    assert api.post(f"/images/{name}:1/tag", repo=name, tag="2").status == 201
    untagged = berth(cli_env, "push", name)  # `latest`, as docker's since 20.10: there is none
    assert untagged.returncode == 1 and b"latest" in untagged.stderr
    every = berth(cli_env, "push", "-a", name)
    assert every.returncode == 0 and b"1: digest: sha256:" in every.stdout and b"2: digest: sha256:" in every.stdout
    assert b"tag can't be used with --all-tags/-a" in berth(cli_env, "push", "-a", f"{name}:1").stderr
    assert api.delete(f"/images/{name}:2").status == 200
    assert api.delete(f"/images/{name}:1").status == 200
    pulled = berth(cli_env, "pull", f"{name}:1")
    assert pulled.returncode == 0, pulled.stderr
    lines = pulled.stdout.decode().splitlines()
    assert lines[0] == "1: Pulling from cli" and lines[-1] == f"{name}:1"
    assert f"Status: Downloaded newer image for {name}:1" in lines
    assert b"Downloading" not in pulled.stdout and b"\r" not in pulled.stdout  # plain lines, no redraws
    digest = api.get_json(f"/images/{name}:1/json")["RepoDigests"][0].partition("@")[2]
    listing = berth(cli_env, "images", "--digests", name).stdout.decode().splitlines()
    assert listing[0].split()[:4] == ["REPOSITORY", "TAG", "DIGEST", "IMAGE"]
    assert listing[1].split()[:3] == [name, "1", digest]
    out = berth(cli_env, "logout", registry.host)
    assert out.returncode == 0 and out.stdout == f"Removing login credentials for {registry.host}\n".encode()
    denied = berth(cli_env, "push", f"{name}:1")
    assert denied.returncode == 1 and denied.stderr == b"no basic auth credentials\n"


needs_docker = pytest.mark.skipif(not shutil.which("docker"), reason="the docker CLI is not installed")


@needs_docker
def test_docker_cli_login_push_pull_through_berth(api, registry, cli_env):
    def docker(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], env=cli_env, capture_output=True, input=input, timeout=60)

    name = f"{registry.host}/dcli"
    commit_image(api, name, "1", "echo docker-cli > /hello.txt")
    bad = docker("login", "-u", USER, "--password-stdin", registry.host, input=b"wrong\n")
    assert bad.returncode == 1 and b"401 Unauthorized" in bad.stderr
    good = docker("login", "-u", USER, "--password-stdin", registry.host, input=PASSWORD.encode())
    assert good.returncode == 0 and b"Login Succeeded" in good.stdout, good.stderr
    pushed = docker("push", f"{name}:1")
    assert pushed.returncode == 0, pushed.stderr
    assert b"1: digest: sha256:" in pushed.stdout
    assert docker("rmi", f"{name}:1").returncode == 0
    pulled = docker("pull", f"{name}:1")
    assert pulled.returncode == 0, pulled.stderr
    assert f"Status: Downloaded newer image for {name}:1".encode() in pulled.stdout
    assert pulled.stdout.rstrip().endswith(f"{name}:1".encode())
    digests = docker("images", "--digests", "--format", "{{.Repository}} {{.Digest}}", name).stdout.decode()
    assert digests.startswith(f"{name} sha256:")
    run = docker("run", "--rm", f"{name}:1")
    assert run.returncode == 0 and run.stdout == b"docker-cli\n", run.stderr


# --- images moving between berth and a real dockerd ---------------------------------


@pytest.fixture(scope="module")
def dockerd(registry):
    if not shutil.which("docker"):
        pytest.skip("the docker CLI is not installed")
    d = PrivateDockerd(args=["--insecure-registry", registry.host])
    try:
        d.start()
    except DockerdUnavailable as exc:
        pytest.skip(f"dockerd cannot be started: {exc}")
    try:
        d.docker("login", "-u", USER, "--password-stdin", registry.host, input=PASSWORD.encode())
        yield d
    finally:
        d.stop()


def test_berth_push_docker_pull_and_run(api, registry, dockerd):
    name = f"{registry.host}/to-docker"
    image_id = commit_image(api, name, "1", "echo from-berth > /hello.txt")
    assert not [m for m in messages(push(api, name, "1")) if "error" in m]
    dockerd.docker("pull", f"{name}:1")
    assert dockerd.docker("image", "inspect", "-f", "{{.Id}}", f"{name}:1").stdout.decode().strip() == image_id
    assert dockerd.docker("run", "--rm", "--network", "none", f"{name}:1").stdout == b"from-berth\n"


def test_docker_push_berth_pull_and_run(api, registry, dockerd):
    dockerd.import_busybox("dbox:1")
    script = "echo from-docker > /hello.txt; mkdir -p /d; touch /d/gone"
    dockerd.docker("run", "--name", "mk", "--network", "none", "dbox:1", "sh", "-c", script)
    name = f"{registry.host}/from-docker"
    dockerd.docker("commit", "-c", 'CMD ["cat", "/hello.txt"]', "mk", f"{name}:1")
    dockerd.docker("rm", "mk")
    pushed = dockerd.docker("push", f"{name}:1").stdout.decode()
    digest = pushed.split("digest: ")[1].split()[0]
    image_id = dockerd.docker("image", "inspect", "-f", "{{.Id}}", f"{name}:1").stdout.decode().strip()
    reply = pull(api, name, "1")
    assert statuses(reply)[-2:] == [f"Digest: {digest}", f"Status: Downloaded newer image for {name}:1"], \
        messages(reply)
    inspect = api.get_json(f"/images/{name}:1/json")
    assert inspect["Id"] == image_id and inspect["RepoDigests"] == [f"{name}@{digest}"]
    cid = api.run([], image=f"{name}:1")
    assert api.wait(cid) == 0 and api.logs(cid) == [(1, b"from-docker\n")]
    api.remove(cid)


# --- `berth run` and `create` pulling a missing image ----------------------------------


def test_berth_run_pulls_a_missing_image(api, registry, cli_env):
    name = f"{registry.host}/runpull"
    commit_image(api, name, "1", "echo pulled > /hello.txt")
    assert berth(cli_env, "login", "-u", USER, "--password-stdin", registry.host,
                 input=PASSWORD.encode()).returncode == 0
    assert berth(cli_env, "push", f"{name}:1").returncode == 0
    assert api.delete(f"/images/{name}:1").status == 200

    never = berth(cli_env, "run", "--rm", "--pull", "never", f"{name}:1", "echo", "hi")
    assert never.returncode == 125, never.stderr
    assert b"Unable to find image" not in never.stderr and b"No such image" in never.stderr

    bad = berth(cli_env, "run", "--rm", "--pull", "sometimes", f"{name}:1")
    assert bad.returncode == 125 and b"invalid pull option" in bad.stderr

    run = berth(cli_env, "run", "--rm", f"{name}:1", "echo", "hi")
    assert run.returncode == 0, run.stderr
    assert run.stdout == b"hi\n"
    lines = run.stderr.decode().splitlines()
    assert lines[0] == f"Unable to find image '{name}:1' locally"
    assert "1: Pulling from runpull" in lines and f"Status: Downloaded newer image for {name}:1" in lines
    assert api.get_json(f"/images/{name}:1/json")["Id"]

    again = berth(cli_env, "run", "--rm", f"{name}:1")  # present: no pull
    assert again.returncode == 0 and again.stdout == b"pulled\n" and again.stderr == b""

    always = berth(cli_env, "run", "--rm", "--pull", "always", f"{name}:1")
    assert always.returncode == 0 and always.stdout == b"pulled\n", always.stderr
    assert b"Unable to find image" not in always.stderr
    assert f"Status: Image is up to date for {name}:1".encode() in always.stderr

    assert api.delete(f"/images/{name}:1").status == 200
    created = berth(cli_env, "create", f"{name}:1")
    assert created.returncode == 0, created.stderr
    assert created.stderr.startswith(f"Unable to find image '{name}:1' locally\n".encode())
    cid = created.stdout.decode().strip()
    assert len(cid) == 64 and b"Pulling from runpull" not in created.stdout
    api.remove(cid)


def test_berth_run_of_a_tag_missing_on_the_registry(api, registry, cli_env):
    assert berth(cli_env, "login", "-u", USER, "--password-stdin", registry.host,
                 input=PASSWORD.encode()).returncode == 0
    name = f"{registry.host}/runpull-none:nope"
    run = berth(cli_env, "run", "--rm", name, "true")
    assert run.returncode == 125 and run.stdout == b""
    lines = run.stderr.decode().splitlines()
    assert lines[0] == f"Unable to find image '{name}' locally"
    failure = [line for line in lines if line.startswith("berth: ")]
    assert len(failure) == 1 and "unknown" in failure[0].lower(), run.stderr
    assert lines[-1] == "Run 'berth run --help' for more information"
    created = berth(cli_env, "create", name)
    assert created.returncode == 1 and created.stderr.decode().splitlines()[-1].startswith("Error")


# --- registry mirrors and cross-repository mounts ---------------------------------------


def test_pull_of_a_docker_io_image_comes_from_the_mirror(api, registry, fresh_daemon):
    work = Path(tempfile.mkdtemp(prefix="berth-registry-mirror-"))
    mirror = Registry("", work)
    try:
        commit_image(api, f"{mirror.host}/library/bb", "v1", "echo mirrored > /hello.txt")
        assert push(api, f"{mirror.host}/library/bb", "v1").status == 200
        other = fresh_daemon("--registry-mirror", "http://127.0.0.1:9/", "--registry-mirror", f"http://{mirror.host}")
        reply = pull(other.api, "bb", "v1")
        assert reply.status == 200, reply.body
        said = statuses(reply)
        assert "Pulling from library/bb" in said and said[-1] == "Status: Downloaded newer image for bb:v1", said
        cid = other.api.run([], image="bb:v1")
        assert other.api.wait(cid) == 0 and other.api.logs(cid) == [(1, b"mirrored\n")]
        other.api.remove(cid)
        # absent from the mirror: docker.io is asked, and fails fast (the closed proxy)
        missing = pull(other.api, "bb-absent", "v1")
        assert missing.status != 200 or any("error" in m for m in messages(missing))
        # a push of a docker.io name never goes to a mirror
        other.api.post("/images/bb:v1/tag", repo="berthtest/bb", tag="v1")
        pushed = push(other.api, "berthtest/bb", "v1")
        assert pushed.status != 200 or any("error" in m for m in messages(pushed))
        assert not list((mirror.storage / "docker/registry/v2/repositories").glob("berthtest"))
    finally:
        mirror.stop()


def test_pulled_layers_are_mounted_on_push_to_another_repository(api, registry, fresh_daemon):
    name = f"{registry.host}/mount-src"
    commit_image(api, name, "1", "echo mount > /hello.txt")
    assert push(api, name, "1").status == 200
    other = fresh_daemon()
    assert pull(other.api, name, "1").status == 200
    other.api.post(f"/images/{name}:1/tag", repo=f"{registry.host}/mount-dst", tag="1")
    reply = push(other.api, f"{registry.host}/mount-dst", "1")
    assert reply.status == 200, reply.body
    said = statuses(reply)
    assert "Mounted from mount-src" in said and not [m for m in messages(reply) if "error" in m], said
    assert pull(other.api, f"{registry.host}/mount-dst", "1").status == 200


def test_blob_mount_over_token_auth(api, token_registry):
    name = f"{token_registry.host}/tok-src"
    commit_image(api, name, "1", "echo tok > /hello.txt")
    assert push(api, name, "1").status == 200
    api.post(f"/images/{name}:1/tag", repo=f"{token_registry.host}/tok-dst", tag="1")
    reply = push(api, f"{token_registry.host}/tok-dst", "1")
    said = statuses(reply)
    assert said.count("Mounted from tok-src") == 2 and "Pushed" not in said, said
