"""Credential helpers: `berth login` stores through `docker-credential-<name>` when
config.json names one (`credHelpers` or `credsStore`), pull reads it back, logout erases.

The helper is a fake `docker-credential-testhelper` keeping a JSON file, first on PATH;
the registry is Debian's docker-registry with htpasswd on 127.0.0.1 (as in test_registry).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_registry import PASSWORD, REPO, USER, commit_image, registry  # noqa: F401 (its registry fixture)

pytestmark = pytest.mark.skipif(not (shutil.which("docker-registry") and shutil.which("htpasswd")),
                                reason="docker-registry and htpasswd are not installed (make install)")

HELPER = f"""#!{sys.executable}
import json, os, sys
path = os.environ["TESTHELPER_STORE"]
store = json.load(open(path)) if os.path.exists(path) else {{}}
action, data = sys.argv[1], sys.stdin.read()
if action == "store":
    entry = json.loads(data)
    store[entry["ServerURL"]] = {{"Username": entry["Username"], "Secret": entry["Secret"]}}
elif action in ("get", "erase"):
    if data.strip() not in store:
        print("credentials not found in native keychain")
        sys.exit(1)
    if action == "get":
        print(json.dumps({{"ServerURL": data.strip(), **store[data.strip()]}}))
    else:
        del store[data.strip()]
json.dump(store, open(path, "w"))
"""


@pytest.fixture
def helper_env(daemon, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "docker-credential-testhelper"
    script.write_text(HELPER)
    script.chmod(0o755)
    config = tmp_path / "docker-config"
    config.mkdir()
    return {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(config),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "TESTHELPER_STORE": str(tmp_path / "store.json")}


def berth(env, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shell.cli", "-H", env["DOCKER_HOST"], *args], env=env, cwd=REPO,
                          capture_output=True, input=input, timeout=60)


@pytest.fixture
def cleanup(api):
    names: list[str] = []
    yield names
    for name in names:
        api.delete(f"/images/{name}", force=1)


@pytest.mark.parametrize("setting", ["credHelpers", "credsStore"])
def test_login_pull_logout_through_a_helper(api, registry, helper_env, cleanup, setting):
    config_file = Path(helper_env["DOCKER_CONFIG"]) / "config.json"
    store = Path(helper_env["TESTHELPER_STORE"])
    config_file.write_text(json.dumps({"credHelpers": {registry.host: "testhelper"}} if setting == "credHelpers"
                                      else {"credsStore": "testhelper"}))
    name = f"{registry.host}/helper-{setting.lower()}"
    cleanup.append(f"{name}:1")
    commit_image(api, name, "1", "echo helper > /hello.txt")
    denied = berth(helper_env, "push", f"{name}:1")
    assert denied.returncode == 1 and denied.stderr == b"no basic auth credentials\n"

    done = berth(helper_env, "login", "-u", USER, "--password-stdin", registry.host, input=PASSWORD.encode())
    assert done.returncode == 0 and done.stdout.endswith(b"Login Succeeded\n"), done.stderr
    assert json.loads(store.read_text()) == {registry.host: {"Username": USER, "Secret": PASSWORD}}
    config = json.loads(config_file.read_text())
    assert config["auths"] == {registry.host: {}}  # no secret in config.json, as the docker CLI writes

    pushed = berth(helper_env, "push", f"{name}:1")
    assert pushed.returncode == 0, pushed.stderr
    assert api.delete(f"/images/{name}:1").status == 200
    pulled = berth(helper_env, "pull", f"{name}:1")
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.decode().splitlines()[-1] == f"{name}:1"

    out = berth(helper_env, "logout", registry.host)
    assert out.returncode == 0 and out.stdout == f"Removing login credentials for {registry.host}\n".encode()
    assert json.loads(store.read_text()) == {}
    assert registry.host not in json.loads(config_file.read_text()).get("auths", {})
    again = berth(helper_env, "pull", f"{name}:1")
    assert again.returncode == 1 and b"no basic auth credentials" in again.stderr, again.stderr


def test_a_failing_helper_is_an_error(registry, helper_env):
    Path(helper_env["DOCKER_CONFIG"], "config.json").write_text(json.dumps({"credsStore": "missing"}))
    done = berth(helper_env, "login", "-u", USER, "--password-stdin", registry.host, input=PASSWORD.encode())
    assert done.returncode == 1 and b"docker-credential-missing" in done.stderr, done.stderr
