# Two commands for a fresh machine with Python 3.10+:  make lab   and   make test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard chapters/*.ipynb))

.PHONY: lab test unit course clean-cache help site slides test-browser pair check models gpu-check bench

help:
	@echo "make lab    - install into $(VENV) and open JupyterLab at the repository root"
	@echo "make test   - install, then unit tests + notebook checks + every chapter under nbval (smoke profile)"
	@echo "make unit   - unit tests only"
	@echo "make course - execute every chapter in place in the current profile (refreshes figures/)"
	@echo "make pair   - after editing chapters/*.py: update the paired .ipynb, keeping its stored outputs"
	@echo "make check  - quick checks (seconds): pairing, stored notebooks executed in order, no stored errors"
	@echo "make models - retrain every shipped cpu-profile model (about 2 h on 2 cores) and rewrite checkpoints/MANIFEST.json"
	@echo "make gpu-check - on a CUDA machine: gpu-profile throughput, memory and FD ratio in ~7 min (build/gpu_check.json)"
	@echo "make bench  - the course's digits model against the usual diffusers recipe, same training budgets (~15 min; build/bench.json)"
	@echo "make site   - build the offline website from the stored notebooks into build/site"
	@echo "make slides - one offline reveal.js deck per chapter, from the stored notebooks, into build/slides"
	@echo "make test-browser - real-browser tests (Chromium): JupyterLab, every page of the site, every slide deck"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# On Linux without an NVIDIA driver, take torch's CPU build (a few hundred MB) before pyproject's plain `torch`
# would pull the CUDA build (about 3 GB). With a GPU, or when torch is already installed, nothing changes.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	@if ! $(BIN)/python -c "import torch" 2>/dev/null && [ "$$(uname -s)" = Linux ] \
	    && ! command -v nvidia-smi >/dev/null 2>&1; then \
		echo "no CUDA here: installing torch's CPU build from $(TORCH_CPU_INDEX)"; \
		$(BIN)/python -m pip install torch --index-url $(TORCH_CPU_INDEX) \
		  || echo "could not reach $(TORCH_CPU_INDEX); pip will choose torch itself"; \
	fi
	$(BIN)/python -m pip install -e ".[dev]"
	@touch $(STAMP)

# Jupyter refuses to run as root (containers, classroom servers) unless told; LAB_ARGS passes more options.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
LAB_ARGS ?=

DOCS_STAMP := $(VENV)/.installed-docs
$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,docs,browser]"
	@touch $(DOCS_STAMP)

# diffusers comes from the bench extra: the chapters never need it; make bench and tests/test_bench.py do.
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	@touch $(BENCH_STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=. $(ALLOW_ROOT) $(LAB_ARGS)

# Each test process uses one thread: on a 2-core machine with two pytest workers, more only fight.
test: $(BENCH_STAMP)
	COURSE_PROFILE=smoke OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadscope tests --ignore=tests/browser \
		--nbval-lax --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg $(NOTEBOOKS)

unit: $(BENCH_STAMP)
	COURSE_PROFILE=smoke OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadscope tests --ignore=tests/browser

# Executes every chapter in place, JOBS at a time (each kernel on its share of the cores), and prints the seconds
# of each and of all; COURSE_CACHE_DIR=$(mktemp -d) make course times a cold run, JOBS=1 one chapter at a time.
# docs/execute_chapters.py is nbconvert's executor with the kernel's replies polled in 1-s slices.
JOBS ?= 2
course: $(STAMP)
	$(BIN)/python docs/execute_chapters.py --timeout 3600 --jobs $(JOBS) $(NOTEBOOKS)

# The website: stored outputs only, nothing executed (about a minute). Serve it: python -m http.server -d build/site
site: $(DOCS_STAMP)
	$(BIN)/python docs/build_site.py

# The slide decks (seconds): stored outputs only, reveal.js and MathJax bundled. Open build/slides/index.html.
slides: $(DOCS_STAMP)
	$(BIN)/python docs/build_slides.py

# Needs Chromium (Debian: apt-get install chromium; or CHROMIUM=/path). Screenshots: build/screenshots/.
test-browser: $(DOCS_STAMP)
	$(BIN)/python docs/build_site.py
	$(BIN)/python docs/build_slides.py
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -p no:cacheprovider -v tests/browser

# The one output-preserving way to carry edits of a chapter's .py into its .ipynb (--update keeps the outputs).
PY_TWINS := $(NOTEBOOKS:.ipynb=.py)
pair: $(STAMP)
	@for py in $(PY_TWINS); do $(BIN)/jupytext --to ipynb --update --quiet $$py || exit 1; done

check: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_notebooks.py

# Retrains in a fresh cache, never loading checkpoints/ itself. `make models FROM_CACHE=DIR` ships DIR's models instead.
models: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python checkpoints/make_models.py $(if $(FROM_CACHE),--from-cache $(FROM_CACHE),)

# CUDA only (GPU_CHECK_DRY_RUN=1: the same code on the CPU at tiny sizes); GPU_CHECK_BUDGET_S sets the seconds (420).
gpu-check: $(STAMP)
	$(BIN)/python -m utils.eval.gpu_check

# BENCH_ARGS passes options, e.g. BENCH_ARGS='--budgets 30 60'.
BENCH_ARGS ?=
bench: $(BENCH_STAMP)
	$(BIN)/python -m utils.eval.bench $(BENCH_ARGS)

clean-cache:
	rm -rf .cache
