# Set-up and the two commands the README names. PY is the interpreter that creates the venv.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup setup-test run test clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first and pinned: the CPU wheel; an open range would pull a multi-GB CUDA build.
setup: $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .

setup-test: setup
	$(BIN)/pip install -q -e '.[test]'

run: setup
	$(BIN)/nas $(ARGS)

# The suite runs on TEST_WORKERS processes (pytest-xdist; worksteal evens out the long end-to-end tests): many tests
# wait on subprocesses, servers and imports, so two workers finish sooner even on 2 cores. TEST_WORKERS=0: one process.
# pytest exits 5 when it collects no test: here that is a broken suite, not a pass.
TEST_WORKERS ?= 2
test: setup-test
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

clean:
	rm -rf outputs/runs outputs/multirun outputs/mlflow.db outputs/mlartifacts
