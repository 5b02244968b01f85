# make demo / make test: each creates .venv when missing and installs the project
# into it (again only when pyproject.toml changed), then runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# glibc's malloc asks the kernel for transparent huge pages for large buffers:
# XLA's CPU code allocates its temporaries anew on every call, and faulting them
# in 4 KB pages halves the speed of convolutions (docs/scaling.md). Set your own
# GLIBC_TUNABLES to override.
export GLIBC_TUNABLES ?= glibc.malloc.hugetlb=1

.PHONY: demo test test-integration lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m mairl.demo $(if $(DEMOS),--demos $(DEMOS),)

test: $(STAMP)
	$(BIN)/python -m ruff check mairl envs tests experiments
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# the end-to-end tests (CLI, tutorials, subprocesses, lockstep checks); CI runs both
test-integration: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m "integration and not slow"

bench: $(STAMP)
	$(BIN)/mairl bench all --out docs/benchmarks.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
