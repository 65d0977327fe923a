"""Who can reach the daemon: the unix socket (mode 0660, root and the socket group), TCP
with mutual TLS for the real docker CLI (`--tlsverify`), plain TCP on loopback only.

Certificates are made here with trustme: one CA signs the server's and a client's, another
CA a client certificate the daemon must refuse. Every TCP listener is on 127.0.0.1.
"""

from __future__ import annotations

import grp
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import trustme

from tests.daemon import REPO, Daemon

docker_cli = pytest.mark.skipif(not shutil.which("docker"), reason="the docker CLI is not installed")
PING = b"GET /_ping HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_on(port: int) -> bool:
    """A TCP socket of this host listens on `port`, on any address."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                return True
    return False


class Group:
    """A temporary group, deleted afterwards (unless it existed before)."""

    def __init__(self, name: str):
        self.name = name
        self.created = False

    def __enter__(self) -> int:
        try:
            return grp.getgrnam(self.name).gr_gid
        except KeyError:
            subprocess.run(["groupadd", self.name], check=True)
            self.created = True
            return grp.getgrnam(self.name).gr_gid

    def __exit__(self, *exc) -> None:
        if self.created:
            subprocess.run(["groupdel", self.name], check=True)


def ping_as(sock: Path, uid: int, gid: int) -> str:
    """GET /_ping on `sock` as uid:gid with no supplementary groups (in a forked child):
    the status line, or the error."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to uid:gid, connect, report, exit without running pytest's code
        answer = b"?"
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(30)
                s.connect(str(sock))
                s.sendall(PING)
                answer = s.recv(100).split(b"\r\n")[0]
        except OSError as exc:
            answer = (exc.strerror or str(exc)).encode()
        finally:
            os.write(write, answer)
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(pid, 0)
    return answer


def refused_at_start(*args: str) -> subprocess.CompletedProcess:
    """Run berthd with `args` on a root that must stay untouched; it must exit non-zero."""
    root = Path(tempfile.mkdtemp(prefix="berth-test-")) / "root"
    try:
        result = subprocess.run([sys.executable, "-m", "engine.daemon", "--root", str(root),
                                 "--config-file", str(root.parent / "berthd.toml"), *args],
                                cwd=REPO, capture_output=True, text=True, timeout=30)
        assert result.returncode != 0, result.stderr
        assert not root.exists(), "berthd touched its root before refusing"
        return result
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


# -- the unix socket ------------------------------------------------------------------------

def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def test_socket_is_0660_root_and_the_group(fresh_daemon):
    """Only root and members of `--group` can connect."""
    with Group(f"bt-reach-{os.getpid()}") as gid:
        d = fresh_daemon("--group", f"bt-reach-{os.getpid()}")
        st = d.sock.stat()
        assert (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid) == (oct(0o660), 0, gid)
        os.chmod(d.root, 0o711)  # the test root is mkdtemp's 0700: let `nobody` reach the run dir
        nobody = 65534
        assert ping_as(d.sock, nobody, gid).startswith("HTTP/1.1 200")
        assert ping_as(d.sock, nobody, nobody) == "Permission denied"
        assert d.stop() == 0
        assert not d.sock.exists()


def test_default_group_is_berth_when_it_exists_else_root(fresh_daemon):
    """Without --group: root's while there is no `berth` group, `berth` once there is one
    (created for the test and deleted after, when the host has none)."""
    had_berth = _group_exists("berth")
    d = fresh_daemon()
    if not had_berth:
        assert d.sock.stat().st_gid == 0 and "no group 'berth'" in d.log.read_text()
        assert d.stop() == 0
    with Group("berth") as gid:
        if not had_berth:
            d.start()
        st = d.sock.stat()
        assert (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid) == (oct(0o660), 0, gid)
        assert d.stop() == 0


def test_group_by_number_and_root_by_empty_name(fresh_daemon):
    d = fresh_daemon("--group", "4242")
    assert d.sock.stat().st_gid == 4242
    assert d.stop() == 0
    d.args = ["--group", ""]
    d.start()
    assert d.sock.stat().st_gid == 0


def test_unknown_group_is_refused_at_start():
    result = refused_at_start("--group", "no-such-group-bt")
    assert "berthd: --group no-such-group-bt: no such group" in result.stderr


# -- TCP with TLS -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """ca.pem, server-{cert,key}.pem; client/ (signed by the CA), intruder/ (by another CA)
    and anonymous/ (no certificate), each as the docker CLI wants a cert dir."""
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    server = ca.issue_cert("127.0.0.1", "::1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(d / "server-cert.pem"))
    server.private_key_pem.write_to_path(str(d / "server-key.pem"))
    for name, issuer in (("client", ca), ("intruder", trustme.CA())):
        (d / name).mkdir()
        leaf = issuer.issue_cert(f"berth-test-{name}")
        leaf.cert_chain_pems[0].write_to_path(str(d / name / "cert.pem"))
        leaf.private_key_pem.write_to_path(str(d / name / "key.pem"))
        shutil.copy(d / "ca.pem", d / name / "ca.pem")  # they trust the real server
    (d / "anonymous").mkdir()
    shutil.copy(d / "ca.pem", d / "anonymous" / "ca.pem")
    return d


@pytest.fixture(scope="module")
def tls_daemon(pki):
    """A daemon on 127.0.0.1:<free port> with --tlsverify (and its unix socket), leak-checked."""
    port = free_port()
    d = Daemon("-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", str(pki / "ca.pem"),
               "--tlscert", str(pki / "server-cert.pem"), "--tlskey", str(pki / "server-key.pem"))
    d.port = port
    with d.running():
        yield d
    assert not listening_on(port), f"port {port} still listened on"


def docker_at(url: str, *tls: str, tmp: Path):
    """The docker CLI against `url` with `tls` options, its config and cert dir empty."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env |= {"DOCKER_CONFIG": str(tmp / "config"), "DOCKER_CERT_PATH": str(tmp / "no-certs")}

    def run(*args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["docker", "-H", url, *tls, *args], env=env, capture_output=True, input=input,
                                timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} → {result.returncode}\n{result.stderr.decode()}")
        return result

    return run


def tls_args(pki: Path, who: str, verify: bool = True) -> list[str]:
    cert = [] if who == "anonymous" else ["--tlscert", str(pki / who / "cert.pem"), "--tlskey", str(pki / who / "key.pem")]
    return ["--tlsverify" if verify else "--tls", "--tlscacert", str(pki / who / "ca.pem"), *cert]


@docker_cli
def test_docker_cli_tlsverify_version_and_info(tls_daemon, pki, tmp_path):
    docker = docker_at(f"tcp://127.0.0.1:{tls_daemon.port}", *tls_args(pki, "client"), tmp=tmp_path)
    assert docker("version", "--format", "{{.Server.APIVersion}}").stdout == b"1.41\n"
    assert b"Runtimes:" in docker("info").stdout
    assert "clients need a certificate signed by" in tls_daemon.log.read_text()


@docker_cli
def test_docker_cli_tlsverify_run_attach_and_exec(tls_daemon, pki, tmp_path):
    """The attach and exec hijacks (`Upgrade: tcp`) over TLS, stdin's end included."""
    docker = docker_at(f"tcp://127.0.0.1:{tls_daemon.port}", *tls_args(pki, "client"), tmp=tmp_path)
    assert docker("run", "--rm", "busybox", "echo", "over tls").stdout == b"over tls\n"
    assert docker("run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z", input=b"piped\n").stdout == b"PIPED\n"
    big = docker("run", "--rm", "busybox", "sh", "-c", "yes 0123456789abcdef | head -c 3000000").stdout
    assert big == (b"0123456789abcdef\n" * 200_000)[:3_000_000]
    cid = docker("run", "-d", "busybox", "sleep", "300").stdout.decode().strip()
    try:
        result = docker("exec", cid, "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
        assert (result.returncode, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
        assert docker("exec", "-i", cid, "cat", input=b"to exec\n").stdout == b"to exec\n"
    finally:
        docker("rm", "-f", cid)
    created = docker("create", "busybox", "echo", "attached").stdout.decode().strip()
    assert docker("start", "-a", created).stdout == b"attached\n"
    docker("rm", created)


def _tls_ping(port: int, pki: Path, who: str) -> str:
    """GET /_ping over TLS as `who`: the status line, or the TLS error."""
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if who != "anonymous":
        context.load_cert_chain(pki / who / "cert.pem", pki / who / "key.pem")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(PING)
                return tls.recv(100).split(b"\r\n")[0].decode()
    except ssl.SSLError as exc:
        return exc.reason or str(exc)
    except ConnectionError as exc:
        return type(exc).__name__


def test_tls_client_certificate_is_required(tls_daemon, pki):
    assert _tls_ping(tls_daemon.port, pki, "client").startswith("HTTP/1.1 200")
    assert _tls_ping(tls_daemon.port, pki, "anonymous") == "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    assert "TLS handshake with 127.0.0.1:" in tls_daemon.log.read_text()


def test_tls_refuses_a_certificate_from_another_ca(tls_daemon, pki):
    assert _tls_ping(tls_daemon.port, pki, "intruder") == "TLSV1_ALERT_UNKNOWN_CA"
    assert "refused: certificate verify failed" in tls_daemon.log.read_text()


@docker_cli
def test_docker_cli_refused_without_a_good_certificate(tls_daemon, pki, tmp_path):
    url = f"tcp://127.0.0.1:{tls_daemon.port}"
    anonymous = docker_at(url, *tls_args(pki, "anonymous", verify=False), tmp=tmp_path)("version", check=False)
    assert anonymous.returncode != 0 and b"certificate required" in anonymous.stderr, anonymous.stderr
    intruder = docker_at(url, *tls_args(pki, "intruder"), tmp=tmp_path)("version", check=False)
    assert intruder.returncode != 0 and b"unknown certificate authority" in intruder.stderr, intruder.stderr
    plain = docker_at(url, tmp=tmp_path)("version", check=False)  # plain HTTP to a TLS port
    assert plain.returncode != 0 and b"Server:" not in plain.stdout


@docker_cli
def test_tls_without_verify_takes_any_client_with_a_warning(fresh_daemon, pki, tmp_path):
    port = free_port()
    d = fresh_daemon("-H", f"tcp://127.0.0.1:{port}", "--tls", "--tlscert", str(pki / "server-cert.pem"),
                     "--tlskey", str(pki / "server-key.pem"))
    docker = docker_at(f"tcp://127.0.0.1:{port}", *tls_args(pki, "anonymous"), tmp=tmp_path)
    assert docker("run", "--rm", "busybox", "echo", "anyone").stdout == b"anyone\n"
    assert "with TLS but without --tlsverify" in d.log.read_text()


# -- plain TCP --------------------------------------------------------------------------------

@docker_cli
def test_plain_tcp_on_loopback_works_with_a_warning(fresh_daemon, tmp_path):
    port = free_port()
    d = fresh_daemon("-H", f"tcp://127.0.0.1:{port}")
    assert f"API listening on tcp://127.0.0.1:{port} without TLS" in d.log.read_text()
    docker = docker_at(f"tcp://127.0.0.1:{port}", tmp=tmp_path)
    assert docker("version", "--format", "{{.Server.APIVersion}}").stdout == b"1.41\n"
    assert docker("run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z", input=b"plain\n").stdout == b"PLAIN\n"
    assert d.api.get("/_ping").status == 200  # the unix socket is served beside it
    assert d.stop() == 0
    assert not listening_on(port)


@pytest.mark.parametrize("host", ["tcp://0.0.0.0:{port}", "tcp://[::]:{port}", "0.0.0.0:{port}"])
def test_plain_tcp_off_loopback_is_refused_before_binding(host):
    port = free_port()
    url = host.format(port=port)
    result = refused_at_start("-H", url)
    assert "without --tlsverify" in result.stderr and "is not a loopback address" in result.stderr, result.stderr
    assert not listening_on(port)


def test_tls_without_verify_off_loopback_is_refused(pki):
    port = free_port()
    result = refused_at_start("-H", f"tcp://0.0.0.0:{port}", "--tls", "--tlscert", str(pki / "server-cert.pem"),
                              "--tlskey", str(pki / "server-key.pem"))
    assert f"refusing to listen on tcp://0.0.0.0:{port} without --tlsverify" in result.stderr


def test_a_busy_port_fails_the_start_cleanly(fresh_daemon):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"berthd: cannot listen on tcp://127.0.0.1:{port} .*Address already in use"):
            fresh_daemon("-H", f"tcp://127.0.0.1:{port}")


def test_bad_hosts_and_tls_files_are_refused_at_start(pki):
    assert "fd:// (systemd socket activation) is not supported" in refused_at_start("-H", "fd://").stderr
    assert "unsupported scheme 'ssh'" in refused_at_start("-H", "ssh://me@there").stderr
    assert "port must be a number" in refused_at_start("-H", "tcp://127.0.0.1:99999").stderr
    missing = refused_at_start("-H", f"tcp://127.0.0.1:{free_port()}", "--tlsverify", "--tlscacert",
                               str(pki / "nope.pem"), "--tlscert", str(pki / "server-cert.pem"),
                               "--tlskey", str(pki / "server-key.pem"))
    assert f"--tlscacert {pki / 'nope.pem'}: No such file or directory" in missing.stderr


def test_dockerpy_over_tls(tls_daemon, pki, monkeypatch):
    import docker

    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # requests lets them override the session's CA
        monkeypatch.delenv(name, raising=False)
    tls = docker.tls.TLSConfig(client_cert=(str(pki / "client" / "cert.pem"), str(pki / "client" / "key.pem")),
                               ca_cert=str(pki / "ca.pem"), verify=True)
    client = docker.DockerClient(base_url=f"https://127.0.0.1:{tls_daemon.port}", tls=tls, version="1.41")
    try:
        assert client.version()["ApiVersion"] == "1.41"
        assert client.containers.run("busybox", ["echo", "from docker-py"], remove=True) == b"from docker-py\n"
    finally:
        client.close()
