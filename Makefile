# Two commands: `make demo` (the main job on the embedded synthetic default) and `make test`.
# Both create .venv in the checkout when it is missing and reuse it otherwise; the test and lint targets
# add the tools of requirements-dev.txt, which the demo does not need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEV_STAMP := $(VENV)/.dev-installed-stamp

.PHONY: demo test test-fast lint venv clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(DEV_STAMP)

demo: $(STAMP)
	$(PY) tools/run_demo.py

test: $(DEV_STAMP) lint
	$(PY) -m pytest -q tests

# The unit tests only: no training runs, subprocess end-to-end runs or multi-process launches (about a minute).
test-fast: $(DEV_STAMP)
	$(PY) -m pytest -q -m "not slow" tests

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
