"""Which registries berthd trusts and mirrors, from its flags and its TOML file, as
`GET /info` and `docker info` report them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.daemon import REPO, Daemon


def test_mirrors_and_insecure_registries_from_flags_and_file(fresh_daemon, tmp_path):
    def configure(d):
        d.config_file.write_text('registry-mirrors = ["http://127.0.0.1:9"]\n'
                                 'insecure-registries = ["registry.internal:5000", "10.9.0.0/16"]\n'
                                 '[plugins.none]\nenabled = false\n')

    d = fresh_daemon("--registry-mirror", "https://127.0.0.1:8", setup=configure)
    found = d.api.get_json("/info")
    config = found["RegistryConfig"]
    assert config["Mirrors"] == ["https://127.0.0.1:8/", "http://127.0.0.1:9/"]  # flags first, as dockerd
    assert config["InsecureRegistryCIDRs"] == ["127.0.0.0/8", "10.9.0.0/16"]
    assert config["IndexConfigs"]["docker.io"] == {"Name": "docker.io", "Mirrors": config["Mirrors"],
                                                   "Secure": True, "Official": True}
    assert config["IndexConfigs"]["registry.internal:5000"]["Secure"] is False
    assert found["IndexServerAddress"] == "https://index.docker.io/v1/"
    berth = subprocess.run([sys.executable, "-m", "shell.cli", "-H", d.host, "info"], cwd=REPO, capture_output=True,
                           text=True, timeout=60).stdout
    env = {**os.environ, "DOCKER_HOST": d.host, "DOCKER_CONFIG": str(tmp_path)}
    clients = [berth] + ([subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60, env=env).stdout]
                         if shutil.which("docker") else [])
    for shown in clients:  # berth's own info as the docker CLI's
        insecure = shown.partition(" Insecure Registries:\n")[2].partition(" Registry Mirrors:")[0]
        assert sorted(insecure.split()) == ["10.9.0.0/16", "127.0.0.0/8", "registry.internal:5000"]
        assert " Registry Mirrors:\n  https://127.0.0.1:8/\n  http://127.0.0.1:9/\n Live Restore Enabled: false" in shown


@pytest.mark.parametrize("text, named", [
    ('registry-mirror = ["http://127.0.0.1:9"]\n', "registry-mirror"),  # a typo of registry-mirrors
    ('registry-mirrors = ["ftp://mirror"]\n', "ftp://mirror"),
    ('insecure-registries = ["10.0.0.0/99"]\n', "10.0.0.0/99"),
    ('registry-mirrors = "http://127.0.0.1:9"\n', "registry-mirrors"),
    ('registry-mirrors = [\n', "berthd.toml"),
])
def test_a_bad_setting_in_the_file_stops_the_daemon_naming_it(text, named):
    d = Daemon()
    d.config_file.parent.mkdir(parents=True, exist_ok=True)
    d.config_file.write_text(text)
    try:
        with pytest.raises(RuntimeError) as failed:
            d.start(timeout=15)
        assert named in str(failed.value)
    finally:
        d.cleanup()
