# Two commands on a fresh machine:
#   make run    set everything up, then run the main job
#   make test   set everything up, then run the test suite
# Both are idempotent: the second time they only check the stamps below.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision are pinned here, not in pyproject.toml (which asks only for
# torch>=2.4, torchvision>=0.19), so that a set-up is reproducible; override on the command
# line, e.g. `make test TORCH_SPEC="torch==2.5.1 torchvision==0.20.1"`.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
INSTALLED := $(VENV)/.installed
DATA := $(VENV)/.data
PYTEST_ARGS ?=

.PHONY: run test test-all test-slow setup browser data lint bench clean

run: setup
	$(VENV)/bin/cnnlab train

test: setup browser
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: setup browser
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-slow: setup
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check src tests bench

# Byte-compiles cnnlab's own modules (0.05 s when nothing changed): where Python is told not to
# write bytecode (PYTHONDONTWRITEBYTECODE), every command would otherwise compile them again.
setup: $(INSTALLED) $(DATA)
	@$(PY) -m compileall -q src > /dev/null

$(PY):
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# Debian's Chromium for the explorer's browser tests (checked every time: it lives outside the venv).
browser:
	@scripts/setup-browser.sh

$(DATA): scripts/setup-data.sh | $(INSTALLED)
	scripts/setup-data.sh $(PY)
	touch $@

data:
	rm -f $(DATA)
	$(MAKE) $(DATA)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache .hypothesis
