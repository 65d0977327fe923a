# berth: `make run` opens the shell on a running daemon, `make test` runs the suite.
# Both rest on `make install`, which sets up only what is missing (quick when nothing changed).

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# The venv runs on Debian's own Python (python3-venv), not whichever python3 comes first
# on PATH (pyenv's, here): Debian builds it with PGO and LTO and links the interpreter
# statically, so it starts ~2 ms sooner (every one-shot `berth` command pays its start)
# and runs the daemon's Python faster (docs/performance.md).
SYSTEM_PYTHON := /usr/bin/python3
# docker.io: the docker CLI for the compatibility tests and a dockerd of their own for the
# image round trips and the benchmarks' comparisons (apt starts no docker service where
# /usr/sbin/policy-rc.d forbids it, as on these machines; the tests start dockerds of their own).
# docker-registry and apache2-utils (htpasswd): the registry tests run registries of their own on 127.0.0.1.
# docker-compose (Debian's 1.29.2): the compose tests drive projects end to end against berth.
APT_PACKAGES := python3-venv crun runc busybox-static tini util-linux iproute2 tmux docker.io docker-registry apache2-utils docker-compose
SOCKET := /run/berth/berth.sock
DAEMON_LOG := /run/berth/berthd.log

.PHONY: install run test bench fuzz daemon stop-daemon clean

# Byte-compile berth's own modules every time (quick when nothing changed): where
# PYTHONDONTWRITEBYTECODE is set, nothing else would, and every `berth` command would pay
# for compiling its modules again (~10 ms of a 70 ms `run --rm`).
install: $(VENV)/.install-stamp
	@$(PY) -m compileall -q engine shell plugins gounits dockerignore
	@# The `berth` command, run with `-S` and the venv's paths written in (pip's copy of
	@# shell/berth keeps `site`: ~3 ms of every one-shot command). Rewritten only when it differs.
	@$(PY) -m shell.launcher $(abspath $(VENV))/bin/berth

# System packages first (root, no prompt), then the virtualenv with the package and test tools.
# (the Makefile too: a changed recipe runs again)
$(VENV)/.install-stamp: pyproject.toml Makefile
	@missing=""; \
	for cmd in crun runc busybox tini-static unshare ip tmux docker dockerd docker-registry htpasswd docker-compose; do command -v $$cmd >/dev/null || missing=1; done; \
	$(SYSTEM_PYTHON) -c 'import ensurepip' 2>/dev/null || missing=1; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages: $(APT_PACKAGES)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi
	@# a venv made by another interpreter (an older checkout's) is made again
	@grep -qx "home = $(patsubst %/,%,$(dir $(SYSTEM_PYTHON)))" $(VENV)/pyvenv.cfg 2>/dev/null || rm -rf $(VENV)
	@test -x $(PY) || $(SYSTEM_PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
	@touch $@

# berthd in a session of its own (setsid): started from `make run`, it would otherwise share
# the terminal's foreground process group, and a Ctrl-C in the shell (ending `logs -f` or
# `attach`) would reach it too and stop it with every container.
daemon: install
	@if ! $(VENV)/bin/berth -H unix://$(SOCKET) version >/dev/null 2>&1; then \
		mkdir -p $$(dirname $(DAEMON_LOG)); \
		echo "starting berthd (log: $(DAEMON_LOG))"; \
		setsid nohup $(VENV)/bin/berthd >>$(DAEMON_LOG) 2>&1 </dev/null & \
		for i in $$(seq 100); do $(VENV)/bin/berth -H unix://$(SOCKET) version >/dev/null 2>&1 && break; sleep 0.1; done; \
		$(VENV)/bin/berth -H unix://$(SOCKET) version >/dev/null 2>&1 || { echo "berthd did not start; see $(DAEMON_LOG)"; exit 1; }; \
	fi

run: daemon
	@$(VENV)/bin/berth -H unix://$(SOCKET)

stop-daemon:
	@test -f /run/berth/berthd.pid && kill $$(cat /run/berth/berthd.pid) || true

test: install
	$(VENV)/bin/pytest -q

# Each benchmark prints its figures beside the last recorded ones (tests/bench/last.json,
# kept in the repository), flags changes beyond the noise, and records the new ones.
bench: install
	$(PY) -m tests.bench.run_rm
	$(PY) -m tests.bench.ops
	$(PY) -m tests.bench.events_logs
	$(PY) -m tests.bench.cli_ps
	$(PY) -m tests.bench.network
	$(PY) -m tests.bench.registry
	$(PY) -m tests.bench.restart
	$(PY) -m tests.bench.build

# Fuzz the API (not part of `make test`): requests generated from Docker's Engine API v1.41
# description (tests/fuzz/swagger-v1.41.json) against an isolated berthd, until FUZZ_SECONDS
# or FUZZ_REQUESTS; every 5xx and connection reset is reported with its request (FUZZ_REPORT).
FUZZ_SECONDS ?= 900
FUZZ_REQUESTS ?= 25000
FUZZ_REPORT ?= /tmp/berth-fuzz/report.json

fuzz: install
	@$(PY) -c 'import schemathesis' 2>/dev/null || \
		$(PY) -m pip install -q --disable-pip-version-check -e '.[test,fuzz]' --config-settings editable_mode=compat
	$(PY) -m tests.fuzz.run --seconds $(FUZZ_SECONDS) --requests $(FUZZ_REQUESTS) --report $(FUZZ_REPORT)

clean:
	rm -rf $(VENV) *.egg-info
