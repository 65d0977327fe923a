"""The client's command grammar, option parsers and stream demultiplexer."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shell import options
from shell.cli import COMMANDS
from shell.grammar import UsageError, parse, usage
from shell.transport import Demuxer, path_of


def test_run_line_is_split_like_docker():
    cmd, a = parse(COMMANDS, ["run", "--rm", "-d", "-e", "A=1", "--env=B=2", "-l", "x=y", "--name", "n",
                              "-m", "64m", "busybox", "sh", "-c", "echo -e hi --rm"])
    assert cmd.name == "run" and a.rm and a.detach and a.env == ["A=1", "B=2"] and a.name == "n"
    assert a.image == "busybox" and a.command == ["sh", "-c", "echo -e hi --rm"]


def test_bundled_flags_and_interspersed_options():
    _, a = parse(COMMANDS, ["ps", "-aq", "--filter", "status=exited", "-f", "label=x"])
    assert a.all and a.quiet and a.filter == ["status=exited", "label=x"]
    _, a = parse(COMMANDS, ["rm", "a", "-f", "b"])
    assert a.force and a.containers == ["a", "b"]
    _, a = parse(COMMANDS, ["logs", "-n5", "c"])
    assert a.tail == "5" and a.container == "c"
    _, a = parse(COMMANDS, ["stop", "-t", "3", "x"])
    assert a.time == 3


def test_a_noun_parses_its_verbs_own_grammar():
    cmd, a = parse(COMMANDS, ["network", "connect", "--alias", "www", "net", "ctr"])
    assert cmd.name == "connect" and (a.alias, a.network, a.container) == (["www"], "net", "ctr")
    _, a = parse(COMMANDS, ["volume", "rm", "-f", "v1", "v2"])  # -f: --force here, --filter for `volume ls`
    assert a.force and a.volumes == ["v1", "v2"]
    _, a = parse(COMMANDS, ["volume", "ls", "-f", "label=x"])
    assert a.filter == ["label=x"]
    assert "  ls " in usage(COMMANDS, ["volume"]) and "Usage: berth volume COMMAND" in usage(COMMANDS, ["volume"])
    assert usage(COMMANDS, ["volume", "rm", "-f"]).startswith("Usage: berth volume rm [OPTIONS] VOLUMES...")
    assert "  volume " in usage(COMMANDS) and "(create, ls, inspect, rm, prune)" in usage(COMMANDS)


@pytest.mark.parametrize("line,message", [
    (["run"], "'berth run' requires at least 1 argument"), (["rm"], "at least 1 argument"), (["ps", "--bogus"], "unknown flag"),
    (["ps", "-z"], "unknown shorthand"), (["stop", "-t"], "needs an argument"), (["nope"], "unknown command"),
    (["plugin", "explode"], "must be one of"), (["tag", "a", "b", "c"], "'berth tag' requires 2 arguments"),
    (["volume"], "must be one of create, ls"), (["volume", "rm"], "'berth volume rm' requires at least 1 argument"),
])
def test_usage_errors(line, message):
    with pytest.raises(UsageError, match=message):
        parse(COMMANDS, line)


@given(st.lists(st.text(min_size=1, max_size=8), max_size=8))
def test_parser_never_crashes(words):
    for name in ("run", "ps", "logs", "rm", "events"):
        try:
            parse(COMMANDS, [name, *words])
        except (UsageError, ValueError):
            pass


@pytest.mark.parametrize("text,expected", [("64m", 64 << 20), ("1g", 1 << 30), ("512kb", 512 << 10), ("100", 100), ("1.5k", 1536)])
def test_ram_bytes(text, expected):
    assert options.ram_bytes(text) == expected


def test_option_values():
    assert options.nano_cpus("0.5") == 500_000_000
    assert options.restart_policy("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    with pytest.raises(UsageError):
        options.restart_policy("always:3")
    assert options.timestamp("10m", now=1000.0) == "400.000000000"
    assert options.timestamp("1700000000") == "1700000000"
    assert options.timestamp("2026-01-01T00:00:00Z") == "1767225600.000000000"
    assert options.filters(["label=a=b", "status=exited"]) == '{"label":{"a=b":true},"status":{"exited":true}}'
    for bad in ("lots", "-1m"):
        with pytest.raises(UsageError):
            options.ram_bytes(bad)


def test_query_encoding():
    assert path_of("/images/create", {"repo": "a b", "changes": ["CMD [\"x\"]", "ENV A=1"], "tag": None}) == \
        '/v1.41/images/create?repo=a%20b&changes=CMD%20%5B%22x%22%5D&changes=ENV%20A%3D1'


@given(st.lists(st.tuples(st.sampled_from([1, 2]), st.binary(max_size=300)), max_size=20), st.integers(1, 50))
def test_demuxer_handles_any_split(frames, step):
    data = b"".join(struct.pack(">BxxxL", s, len(p)) + p for s, p in frames)
    out, err = io.BytesIO(), io.BytesIO()
    demux = Demuxer(out, err)
    for i in range(0, len(data), step):
        demux.feed(data[i:i + step])
    assert out.getvalue() == b"".join(p for s, p in frames if s == 1)
    assert err.getvalue() == b"".join(p for s, p in frames if s == 2)


def test_management_nouns_and_docker_aliases():
    for words, name in ((["container", "ls"], "ps"), (["container", "list"], "ps"), (["container", "ps"], "ps"),
                        (["container", "remove", "c"], "rm"), (["image", "rmi", "i"], "rmi"),
                        (["image", "list"], "images"), (["network", "list"], "ls"), (["volume", "remove", "v"], "rm"),
                        (["system", "info"], "info"), (["--version"], "--version"), (["-v"], "-v")):
        assert parse(COMMANDS, words)[0].name == name
    with pytest.raises(UsageError, match="'berth container rm' requires at least 1 argument"):
        parse(COMMANDS, ["container", "remove"])
    assert "Usage: berth image rm [OPTIONS] IMAGES..." in usage(COMMANDS, ["image", "remove"])
    assert "  --version" not in usage(COMMANDS)  # a root flag, named in the usage line only
