# berth: `make run` opens the shell on a running daemon, `make test` runs the suite.
# Both rest on `make install`, which sets up only what is missing (quick when nothing changed).

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := crun runc busybox-static tini util-linux iproute2 tmux
SOCKET := /run/berth/berth.sock
DAEMON_LOG := /run/berth/berthd.log

.PHONY: install run test bench daemon stop-daemon clean

# Byte-compile berth's own modules every time (quick when nothing changed): where
# PYTHONDONTWRITEBYTECODE is set, nothing else would, and every `berth` command would pay
# for compiling its modules again (~10 ms of a 70 ms `run --rm`).
install: $(VENV)/.install-stamp
	@$(PY) -m compileall -q engine shell plugins

# System packages first (root, no prompt), then the virtualenv with the package and test tools.
$(VENV)/.install-stamp: pyproject.toml
	@missing=""; \
	for cmd in crun runc busybox tini-static unshare ip tmux; do command -v $$cmd >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages: $(APT_PACKAGES)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi
	@command -v docker >/dev/null || { echo "installing the docker CLI (docker.io) for compatibility tests"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null; }
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
	@touch $@

daemon: install
	@if ! $(VENV)/bin/berth -H unix://$(SOCKET) version >/dev/null 2>&1; then \
		mkdir -p $$(dirname $(DAEMON_LOG)); \
		echo "starting berthd (log: $(DAEMON_LOG))"; \
		nohup $(VENV)/bin/berthd >>$(DAEMON_LOG) 2>&1 </dev/null & \
		for i in $$(seq 100); do test -S $(SOCKET) && break; sleep 0.1; done; \
		test -S $(SOCKET) || { echo "berthd did not start; see $(DAEMON_LOG)"; exit 1; }; \
	fi

run: daemon
	@$(VENV)/bin/berth -H unix://$(SOCKET)

stop-daemon:
	@test -f /run/berth/berthd.pid && kill $$(cat /run/berth/berthd.pid) || true

test: install
	$(VENV)/bin/pytest -q

bench: install
	@command -v dockerd >/dev/null || { echo "installing docker.io to compare against"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null; }
	$(PY) -m tests.bench.run_rm
	$(PY) -m tests.bench.events_logs
	$(PY) -m tests.bench.cli_ps
	$(PY) -m tests.bench.network

clean:
	rm -rf $(VENV) *.egg-info
