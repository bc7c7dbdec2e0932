# kexue-notes: one command to build the book, one to run every test.
#   make book   set up .venv and build the HTML book under _build/html
#   make test   set up .venv and run lint, unit tests, strict nbval, the -W build, the offline
#               check and the browser check (headless Chromium, Debian's package)
#   make lab    open the chapters in JupyterLab from the project's environment
#   make execute  re-execute every notebook in place (after changing a chapter or kexue_nb)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
# Seeded hashing and one math-library thread, as kexue_nb.tools.execute runs the notebooks.
export PYTHONHASHSEED := 0
export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install chromium book test lint unit nbval executed html offline browser lab execute clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# Debian's Chromium (and a CJK font for the Chinese titles in screenshots) for the browser
# check; installed when missing and we are root (as in CI).
chromium:
	@{ command -v chromium >/dev/null && fc-list :lang=zh | grep -q . ; } || { [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; } \
	  || { echo "install Debian's chromium and fonts-wqy-microhei for the browser check"; exit 1; }

book: install html

html:
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

lint: install
	$(VENV)/bin/ruff check .

unit: install
	$(PY) -m pytest tests -q

nbval: install
	$(PY) -m pytest $(NBVAL) book --ignore=_build -q

executed: install
	$(PY) -m kexue_nb.tools.check_executed book

offline:
	$(PY) -m kexue_nb.tools.check_offline _build/html

browser: install chromium
	$(PY) -m kexue_nb.tools.check_browser _build/html --screenshots _build/screenshots

test: install chromium lint unit executed nbval html offline browser
	@echo "all checks passed"

lab: install
	$(VENV)/bin/jupyter lab book/

execute: install
	$(PY) -m kexue_nb.tools.execute book/

clean:
	rm -rf _build
