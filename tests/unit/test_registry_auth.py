"""Registry credentials, challenges, token lifetimes, references and manifests: no I/O."""

from __future__ import annotations

import base64
import json

import pytest

from engine.errors import BadRequest, NotFound
from engine.images import reference
from engine.models import AuthConfig
from engine.registry import auth, manifests
from engine.registry.service import Registries


def test_x_registry_auth_header():
    raw = json.dumps({"username": "u", "password": "p?>", "serveraddress": "127.0.0.1:5000"}).encode()
    encoded = base64.urlsafe_b64encode(raw).decode().rstrip("=")  # padding may be missing
    assert auth.decode_header(encoded) == AuthConfig(username="u", password="p?>", serveraddress="127.0.0.1:5000")
    assert auth.decode_header("e30=") is None and auth.decode_header("") is None
    only_auth = base64.urlsafe_b64encode(json.dumps({"auth": base64.b64encode(b"me:pw").decode()}).encode())
    found = auth.decode_header(only_auth.decode())
    assert (found.username, found.password) == ("me", "pw")
    assert auth.decode_header("!!not base64!!") is None  # as dockerd: no credentials, not an error
    capitalised = base64.urlsafe_b64encode(json.dumps({"Username": "me", "Password": "pw"}).encode()).decode()
    assert (auth.decode_header(capitalised).username, auth.decode_header(capitalised).password) == ("me", "pw")


def test_challenges():
    bearer = auth.parse_challenge('Bearer realm="https://auth.example/token",service="reg",'
                                  'scope="repository:a/b:pull,push"')
    assert bearer == auth.Challenge("bearer", {"realm": "https://auth.example/token", "service": "reg",
                                               "scope": "repository:a/b:pull,push"})
    assert auth.parse_challenge('Basic realm="berth-test"') == auth.Challenge("basic", {"realm": "berth-test"})
    assert auth.parse_challenge("Negotiate abc") is None


def test_tokens_are_kept_until_they_expire():
    now = [100.0]
    tokens = auth.Tokens(clock=lambda: now[0])
    assert tokens.put("s", b'{"token": "t1", "expires_in": 60}') == "t1"
    now[0] += 50
    assert tokens.get("s") == "t1"
    now[0] += 6  # within the renewal margin of its expiry
    assert tokens.get("s") is None
    assert tokens.put("s", b'{"access_token": "t2"}') == "t2"  # no expires_in: 60 s
    tokens.forget("s")
    assert tokens.get("s") is None
    with pytest.raises(BadRequest):
        tokens.put("s", b"{}")


@pytest.mark.parametrize("name, host, path", [
    ("busybox", "docker.io", "library/busybox"),
    ("user/app", "docker.io", "user/app"),
    ("localhost/app", "localhost", "app"),
    ("localhost:5000/a/b", "localhost:5000", "a/b"),
    ("127.0.0.1:5000/app", "127.0.0.1:5000", "app"),
    ("registry.example.com/team/app", "registry.example.com", "team/app"),
])
def test_where_an_image_lives(name, host, path):
    assert reference.remote(reference.parse(name).repo) == (host, path)


def test_references_keep_their_familiar_form():
    assert str(reference.parse("docker.io/library/busybox")) == "busybox:latest"
    digest = "sha256:" + "a" * 64
    parsed = reference.parse(f"127.0.0.1:5000/app:v1@{digest}")
    assert (parsed.repo, parsed.digest, str(parsed)) == ("127.0.0.1:5000/app", digest, f"127.0.0.1:5000/app@{digest}")
    assert reference.full_name("busybox") == "docker.io/library/busybox"


def test_insecure_registries():
    registries = Registries.__new__(Registries)
    Registries.__init__(registries, None, None, None, insecure=["reg.test:5000", "10.1.0.0/16"])
    assert registries.insecure("127.0.0.1:5000") and registries.insecure("127.8.9.1")
    assert registries.insecure("localhost:443") and registries.insecure("reg.test:5000")
    assert registries.insecure("10.1.2.3:5000") and not registries.insecure("10.2.0.1:5000")
    assert not registries.insecure("registry-1.docker.io") and not registries.insecure("reg.test:5001")


def test_manifest_lists_pick_the_host_platform():
    index = json.dumps({"schemaVersion": 2, "mediaType": manifests.OCI_INDEX, "manifests": [
        {"mediaType": manifests.OCI_MANIFEST, "digest": "sha256:" + "1" * 64, "size": 1,
         "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": manifests.OCI_MANIFEST, "digest": "sha256:" + "2" * 64, "size": 1,
         "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    parsed = manifests.parse(index, "", "x")
    assert parsed.is_list
    assert manifests.for_platform(parsed, "linux", "amd64", "x").digest == "sha256:" + "2" * 64
    with pytest.raises(NotFound, match="no matching manifest for linux/s390x"):
        manifests.for_platform(parsed, "linux", "s390x", "x")
    zstd = json.dumps({"schemaVersion": 2, "mediaType": manifests.OCI_MANIFEST,
                       "config": {"mediaType": manifests.OCI_CONFIG, "digest": "sha256:" + "3" * 64, "size": 2},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                                   "digest": "sha256:" + "4" * 64, "size": 3}]}).encode()
    with pytest.raises(BadRequest, match="plain and gzip-compressed layers only"):
        manifests.parse(zstd, "", "x")
