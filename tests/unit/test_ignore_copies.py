"""`.dockerignore` patterns are read twice: by the daemon (engine/build/ignore.py) and by
`berth build`, which leaves ignored files out of the upload (shell/build_context.py; the
shell imports nothing of the engine). The two readings must not drift apart."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.build import ignore
from shell import build_context


@given(st.text(alphabet="ab*?[]^!/\\.-", max_size=16))
def test_the_cli_and_the_daemon_read_a_pattern_alike(pattern):
    assert build_context._ignore_regex(pattern) == ignore._regex(pattern)
