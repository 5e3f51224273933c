# neuralcodec developer entry points.  `make test` and `make demo` build .venv on first use.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo test test-all clean

venv: $(STAMP)

# Rebuild the environment when the dependency list changes.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) demos/quickstart.py

# Browser tests (pytest marker `browser`: the demo site in headless Chromium) run as a second
# pass when a Chromium binary is installed (Debian: apt-get install chromium chromium-driver).
CHROMIUM := $(shell command -v chromium || command -v chromium-browser)

test: $(STAMP)
	$(PY) -m pytest -q
ifneq ($(CHROMIUM),)
	$(PY) -m pytest -q -m browser
else
	@echo "chromium not found: browser tests skipped (apt-get install chromium chromium-driver)"
endif

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
