# kexue-notes: one command to build the book, one to run every test.
#   make book   set up .venv with the book's pins only (requirements/book.txt) and build the
#               HTML book under _build/html
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
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
# Seeded hashing and one math-library thread, as kexue_nb.tools.execute runs the notebooks.
export PYTHONHASHSEED := 0
export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install install-book chromium texlive book pdf pdf-check test lint citation unit nbval \
	executed html offline browser lab lab-check execute clean

install: $(VENV)/.installed
install-book: $(VENV)/.book-installed

$(VENV)/.installed: requirements.txt requirements/book.txt requirements/lab.txt \
		requirements/test.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(VENV)/.book-installed $@

$(VENV)/.book-installed: requirements/book.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/book.txt
	touch $@

# CITATION.cff checked by cffconvert in a venv of its own (it pins jsonschema<4, which
# JupyterLab's stack cannot share).
CFF_VENV := .venv-cff
$(CFF_VENV)/.installed:
	$(PYTHON) -m venv $(CFF_VENV)
	$(CFF_VENV)/bin/pip install --quiet cffconvert==2.0.0
	touch $@

# Debian's Chromium (and a CJK font for the Chinese titles in screenshots) for the browser
# check; installed when missing and we are root (as in CI).
chromium:
	@{ command -v chromium >/dev/null && fc-list :lang=zh | grep -q . ; } || { [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; } \
	  || { echo "install Debian's chromium and fonts-wqy-microhei for the browser check"; exit 1; }

book: install-book html

# Debian's XeLaTeX, CJK fonts and poppler for the PDF edition; installed when missing and we
# are root (as in CI).
TEX_PACKAGES := texlive-xetex latexmk texlive-latex-extra texlive-fonts-recommended \
	texlive-lang-cjk texlive-lang-chinese fonts-noto-cjk fonts-freefont-otf poppler-utils
texlive:
	@{ command -v xelatex >/dev/null && command -v latexmk >/dev/null && \
	  kpsewhich xeCJK.sty ctexhook.sty >/dev/null && command -v pdftoppm >/dev/null && \
	  fc-list | grep -q "Noto Serif CJK SC" && fc-list | grep -q FreeSerif ; } || \
	{ [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends $(TEX_PACKAGES) >/dev/null; } || \
	{ echo "install Debian's $(TEX_PACKAGES) for the PDF"; exit 1; }

# The whole book as one PDF (XeLaTeX), also copied beside the site as kexue-notes.pdf.
pdf: install-book texlive
	$(VENV)/bin/jupyter-book build . --builder pdflatex
	mkdir -p _build/html && cp _build/latex/kexue-notes.pdf _build/html/kexue-notes.pdf

pdf-check: install pdf
	$(PY) -m kexue_nb.tools.check_pdf _build/latex/kexue-notes.pdf \
	  --log _build/latex/kexue-notes.log --screenshots _build/screenshots

# Sphinx 7.4 copies static files only when it writes a page: drop the book's own copies and
# mark the front page changed, so an edited _static/ file always reaches the build.
html:
	rm -f $(addprefix _build/html/_static/,$(notdir $(wildcard _static/*)))
	touch book/intro.md
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/actionlint

citation: $(CFF_VENV)/.installed
	$(CFF_VENV)/bin/cffconvert --validate -i CITATION.cff

# Both cores: pytest-xdist, one math thread per worker (OMP_NUM_THREADS above); nbval keeps each
# notebook on one worker (--dist loadfile), since its cells share one kernel.
unit: install
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

test: install chromium lint citation unit executed nbval html offline browser lab-check pdf-check
	@echo "all checks passed"

# JupyterLab refuses to start as root (containers) unless told that it is meant.
lab: install
	$(VENV)/bin/jupyter lab book/ $(if $(filter 0,$(shell id -u)),--allow-root)

execute: install
	$(PY) -m kexue_nb.tools.execute book/

clean:
	rm -rf _build
