# kexue-notes: one command to build the book, one to run every test.
#   make book   set up .venv-book with the book's pins only (requirements/book.txt, no torch)
#               and build the HTML book under _build/html
#   make test   set up .venv with everything (requirements.txt) and run lint (ruff, actionlint),
#               the citation file check, unit tests, strict nbval, the -W build, the offline
#               check, the browser check (headless Chromium, Debian's package) and a chapter
#               opened in a real JupyterLab (jupyterlab-myst rendering, all cells run), and the
#               PDF edition built and checked
#   make pdf    the whole book as one PDF (XeLaTeX, Debian's TeX Live), _build/latex/kexue-notes.pdf
#   make lab    open the chapters in JupyterLab from the project's environment
#   make execute  re-execute every notebook in place (after changing a chapter or kexue_nb)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The book's own environment: what building the site needs, without torch, SciPy or scikit-learn.
BOOK_VENV ?= .venv-book
JB     := $(BOOK_VENV)/bin/jupyter-book
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
# Seeded hashing and one math-library thread, as kexue_nb.tools.execute runs the notebooks.
export PYTHONHASHSEED := 0
export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install install-book system-deps chromium poppler texlive book pdf pdf-check test lint \
	citation unit wheel-check nbval executed html offline browser lab lab-check execute clean

install: $(VENV)/.installed
install-book: $(BOOK_VENV)/.installed

$(VENV)/.installed: requirements.txt requirements/book.txt requirements/package.txt \
		requirements/lab.txt requirements/test.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# kexue_nb without its dependencies: the book's extensions import only kexue_nb.checks (`html`
# proves on every build that torch is absent from this environment).
$(BOOK_VENV)/.installed: requirements/book.txt pyproject.toml
	$(PYTHON) -m venv $(BOOK_VENV)
	$(BOOK_VENV)/bin/pip install --quiet --upgrade pip
	$(BOOK_VENV)/bin/pip install --quiet -r requirements/book.txt
	$(BOOK_VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

# CITATION.cff checked by cffconvert in a venv of its own (it pins jsonschema<4, which
# JupyterLab's stack cannot share).
CFF_VENV := .venv-cff
$(CFF_VENV)/.installed:
	$(PYTHON) -m venv $(CFF_VENV)
	$(CFF_VENV)/bin/pip install --quiet cffconvert==2.0.0
	touch $@

# Debian packages that the checks and tests call (kexue_nb/tools/system_tools.py names the package
# of each program; tests/test_system_tools.py checks this file against the sources). Each part
# is installed when its probe fails and we are root (as in CI); otherwise one line names the
# packages and make stops. $(call debian,PROBE,PACKAGES,APT-OPTIONS)
define debian
@{ $(1) ; } >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(3) $(2) >/dev/null; } || \
  { echo "make $@: install Debian's $(2) (make $@ does it as root)"; exit 1; }
endef

system-deps: chromium poppler texlive

# Chromium for the browser and JupyterLab checks, and a CJK font for the Chinese titles.
chromium:
	$(call debian,command -v chromium && fc-list :lang=zh | grep -q .,chromium fonts-wqy-microhei)

# pdftotext, pdftoppm and pdfinfo for the PDF check and its unit tests.
poppler:
	$(call debian,command -v pdftotext && command -v pdftoppm && command -v pdfinfo,poppler-utils,--no-install-recommends)

book: install-book html

# Debian's XeLaTeX and CJK fonts for the PDF edition.
TEX_PACKAGES := texlive-xetex latexmk texlive-latex-extra texlive-fonts-recommended \
	texlive-lang-cjk texlive-lang-chinese fonts-noto-cjk fonts-freefont-otf
texlive:
	$(call debian,command -v xelatex && command -v latexmk && kpsewhich xeCJK.sty ctexhook.sty && \
	  fc-list | grep -q "Noto Serif CJK SC" && fc-list | grep -q FreeSerif,$(TEX_PACKAGES),--no-install-recommends)

# The whole book as one PDF (XeLaTeX), also copied beside the site as kexue-notes.pdf.
pdf: install-book texlive
	$(JB) build . --builder pdflatex
	mkdir -p _build/html && cp _build/latex/kexue-notes.pdf _build/html/kexue-notes.pdf

pdf-check: install poppler pdf
	$(PY) -m kexue_nb.tools.check_pdf _build/latex/kexue-notes.pdf \
	  --log _build/latex/kexue-notes.log --screenshots _build/screenshots

# Sphinx 7.4 copies static files only when it writes a page: drop the book's own copies and
# mark the front page changed, so an edited _static/ file always reaches the build.
html: install-book
	rm -f $(addprefix _build/html/_static/,$(notdir $(wildcard _static/*)))
	touch book/intro.md
	@! $(BOOK_VENV)/bin/python -c "import torch" 2>/dev/null || \
	  { echo "$(BOOK_VENV) has torch: the book must build without the training stack"; exit 1; }
	$(JB) build . -W -n --keep-going

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/actionlint

citation: $(CFF_VENV)/.installed
	$(CFF_VENV)/bin/cffconvert --validate -i CITATION.cff

# Both cores: pytest-xdist, one math thread per worker (OMP_NUM_THREADS above); nbval keeps each
# notebook on one worker (--dist loadfile), since its cells share one kernel.
unit: install chromium poppler
	$(PY) -m pytest tests -q -n 2

nbval: install
	$(PY) -m pytest $(NBVAL) book --ignore=_build -q -n 2 --dist loadfile

executed: install
	$(PY) -m kexue_nb.tools.check_executed book

offline:
	$(PY) -m kexue_nb.tools.check_offline _build/html

browser: install chromium
	$(PY) -m kexue_nb.tools.check_browser _build/html --screenshots _build/screenshots

# A chapter opened in a real JupyterLab: MyST rendered by jupyterlab-myst, solutions collapsed,
# every cell run without an error.
LAB_CHAPTER := book/probability/entropy-normalization.ipynb
lab-check: install chromium
	$(PY) -m kexue_nb.tools.check_lab $(LAB_CHAPTER) --screenshots _build/screenshots

# kexue_nb as a learner installs it without the book: the wheel is built and checked by twine,
# then installed into a clean venv (pins from requirements/ as constraints; torch==2.13.0 is the
# CPU wheel where one is served), where tests/wheel_smoke.py runs away from the repository.
WHEEL_DIR := _build/wheel
wheel-check: install
	rm -rf $(WHEEL_DIR) && mkdir -p $(WHEEL_DIR)
	$(PY) -m build --wheel --outdir $(WHEEL_DIR) .
	rm -rf build
	$(VENV)/bin/twine check --strict $(WHEEL_DIR)/*.whl
	$(PYTHON) -m venv $(WHEEL_DIR)/venv
	grep -h '^[A-Za-z].*==' requirements/*.txt > $(WHEEL_DIR)/constraints.txt
	$(WHEEL_DIR)/venv/bin/pip install --quiet $(WHEEL_DIR)/*.whl -c $(WHEEL_DIR)/constraints.txt
	cp tests/wheel_smoke.py $(WHEEL_DIR)/smoke.py
	cd $(WHEEL_DIR) && venv/bin/python smoke.py

test: install system-deps lint citation unit wheel-check executed nbval html offline browser \
		lab-check pdf-check
	@echo "all checks passed"

# JupyterLab refuses to start as root (containers) unless told that it is meant.
lab: install
	$(VENV)/bin/jupyter lab book/ $(if $(filter 0,$(shell id -u)),--allow-root)

execute: install
	$(PY) -m kexue_nb.tools.execute book/

clean:
	rm -rf _build
