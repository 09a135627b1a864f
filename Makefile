# Two commands for a fresh machine with Python 3.10+:  make lab   and   make test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard chapters/*.ipynb))

.PHONY: lab test unit course clean-cache help

help:
	@echo "make lab    - install into $(VENV) and open JupyterLab on chapters/"
	@echo "make test   - install, then unit tests + notebook checks + every chapter under nbval (smoke profile)"
	@echo "make unit   - unit tests only"
	@echo "make course - execute every chapter in place in the current profile (refreshes figures/)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	@touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=chapters

# Each test process uses one thread: on a 2-core machine with two pytest workers, more only fight.
test: $(STAMP)
	COURSE_PROFILE=smoke OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadscope tests \
		--nbval-lax --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg $(NOTEBOOKS)

unit: $(STAMP)
	COURSE_PROFILE=smoke OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadscope tests

course: $(STAMP)
	@for nb in $(NOTEBOOKS); do \
		echo "== $$nb"; \
		$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=3600 $$nb || exit 1; \
	done

clean-cache:
	rm -rf .cache
