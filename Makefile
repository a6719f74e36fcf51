# Two commands: `make demo` (the main job on the embedded synthetic default) and `make test`; `make web` serves
# the demo's model in a web page. Both create .venv in the checkout when it is missing and reuse it otherwise;
# the test and lint targets add the tools of requirements-dev.txt, which the demo does not need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Where torch and torchvision come from; empty: PyPI, whose Linux torch is the CUDA build (about 5.5 GB with its
# CUDA libraries). On a machine without a GPU the CPU build is a fraction of that:
#   TORCH_INDEX=https://download.pytorch.org/whl/cpu make venv   (INSTALL.md, "CPU-only machine")
TORCH_INDEX ?=
DEV_STAMP := $(VENV)/.dev-installed-stamp

.PHONY: demo web web-screenshot demo-checkpoints test test-fast lint browser venv clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1$(if $(TORCH_INDEX), --index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(DEV_STAMP)

demo: $(STAMP)
	$(PY) tools/run_demo.py

# The web page over the model `make demo` trained (trained first when a checkpoint is missing), the
# frame-averaging baseline in its Compare tab, the synthetic classes filled in and one test video per class as
# examples; http://127.0.0.1:7860, Ctrl+C stops it. More flags: make web WEB_ARGS="--port 8000".
# `make web-screenshot` retakes docs/web_demo.png the way the browser test drives the page.
DEMO := output/demo
DEMO_CLASSES := moving left, moving right, moving up, moving down
DEMO_EXAMPLES := $(foreach c,left right up down,$(DEMO)/dataset/videos/test/moving_$(c)_0000.mp4)
last_checkpoint = "$$(ls $(DEMO)/$(1)/checkpoints/checkpoint_epoch_*.pyth | tail -n 1)"
WEB_DEMO_ARGS = --cfg $(DEMO)/stdd/config.yaml --checkpoint $(call last_checkpoint,stdd) --label STDD \
	--compare-cfg $(DEMO)/baseline/config.yaml --compare-checkpoint $(call last_checkpoint,baseline) \
	--compare-label "frame-averaging baseline" --classes "$(DEMO_CLASSES)" --top-k 4 --examples $(DEMO_EXAMPLES)
# Repeatable answers: STDD's test masks are otherwise drawn at random, as in the original code.
WEB_DEMO_OPTS = --opts MODEL.DETERMINISTIC_TEST_MASKS True

web: $(STAMP) demo-checkpoints
	$(PY) tools/web_demo.py $(WEB_DEMO_ARGS) $(WEB_ARGS) $(WEB_DEMO_OPTS)

web-screenshot: $(DEV_STAMP) demo-checkpoints
	$(PY) tests/browser.py --out docs/web_demo.png --video $(DEMO)/dataset/videos/test/moving_left_0003.mp4 \
		--classes "$(DEMO_CLASSES)" --top-k 4 -- $(WEB_DEMO_ARGS) $(WEB_DEMO_OPTS)

demo-checkpoints:
	ls $(DEMO)/stdd/checkpoints/checkpoint_epoch_*.pyth $(DEMO)/baseline/checkpoints/checkpoint_epoch_*.pyth \
		>/dev/null 2>&1 || $(PY) tools/run_demo.py --out $(DEMO)

test: $(DEV_STAMP) lint browser
	$(PY) -m pytest -q tests

# The browser the web page's test drives (Debian's chromium and its driver), installed when missing and apt-get
# is there (as root, else through sudo -n); when that fails, that one test is skipped and says why.
browser:
	@if ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
		{ $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver; } \
		|| echo "warning: could not install chromium and chromium-driver; the browser test will be skipped"; \
	fi

# The unit tests only: no training runs, subprocess end-to-end runs or multi-process launches (about a minute).
test-fast: $(DEV_STAMP)
	$(PY) -m pytest -q -m "not slow" tests

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean-venv:
	rm -rf $(VENV)
