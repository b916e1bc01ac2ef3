# `make test` is the one test command: on a fresh Debian machine, as root, it
# installs what the suite needs (host packages, kernel headers for bcc, bpffs,
# a virtual environment) and runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: test host venv bpf clean

test: host venv bpf
	$(PY) -m pytest -q

host:
	bash scripts/setup-host.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup-venv.sh
	bash scripts/setup-venv.sh $(PYTHON) $(VENV)
	touch $@

bpf:
	$(MAKE) -C bpf

clean:
	$(MAKE) -C bpf clean
	rm -rf $(VENV)

# `make demo`: the example chain on a demo veth pair in namespaces of its own, with traffic,
# status, a live reorder through the daemon, and removal of everything it created.
.PHONY: demo
demo: host venv bpf
	$(PY) scripts/demo.py
