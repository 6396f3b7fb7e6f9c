# One virtual environment (.venv) holds everything; every target below creates it on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# Three pytest workers (pytest-xdist) on CI's two cores: most tests wait on brokers and
# daemons, and with two workers the cores stood idle a third of the run (CI's run of the
# suite, sampled from /proc/stat); PYTEST_WORKERS=0 runs the suite in one process.
PYTEST_WORKERS ?= 3

.PHONY: install test lint format demo dashboard-png bench soak chaos clean

# pip's progress in a few lines (tools/install_progress.py), its whole output in
# $(VENV)/pip-install.log; the last line says how to run the installed command.
# The compiled core (bridge/codec/_core.c) is built by that install when gcc and Python's
# headers are there (tools/ensure-compiler.sh installs them from Debian where it can, else
# says why not); the last line before "done" says whether it is in use.
$(STAMP): pyproject.toml setup.py bridge/codec/_core.c bridge/codec/_apply_core.c
	@echo "make install: creating $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@sh tools/ensure-compiler.sh $(PY)
	@echo "make install: installing ddb-bridge with its test and KCL extras into $(VENV) (about a minute)"
	@$(PY) tools/install_progress.py --log $(VENV)/pip-install.log -- \
		$(PY) -m pip install --progress-bar off -e '.[test,kcl]'
	@$(PY) -c 'from bridge.codec.compiled import CORE, WHY_NOT; \
		print("make install: compiled core", "built and in use" if CORE else f"not in use: {WHY_NOT}")'
	@touch $(STAMP)
	@echo "make install: done. Run $(VENV)/bin/ddb-bridge, or first '. $(VENV)/bin/activate' to type ddb-bridge"

install: $(STAMP)

## make test: unit, integration (Apache Kafka and Cassandra from Maven Central, moto server,
## PostgreSQL) and end-to-end tests.
## Java 17+ and Maven come from Debian first where missing (tools/ensure-java-maven.sh: only
## with apt-get, as root or with passwordless sudo; otherwise it says what to install and fails);
## so does promtool, which tests the alert rules (tools/ensure-promtool.sh, the same way), and
## PostgreSQL, Chromium and docker-compose, without which tests would skip
## (tools/ensure-test-packages.sh): a fresh machine gets the whole suite or a clear stop.
## pytest's exit 5 (no tests collected) is a failure. The compiled core's unit tests run once
## more on the Python fallback inside the run (tests/contracts/test_python_fallback.py).
# compileall: the suite starts ~500 Python processes; where PYTHONDONTWRITEBYTECODE is set
# (CI's machines set it) none writes bytecode, and each compiled the project's modules again
# (~70 ms of CPU a daemon launch). Compiled once first, they are read by every process.
test: $(STAMP)
	@sh tools/ensure-java-maven.sh
	@sh tools/ensure-promtool.sh
	@sh tools/ensure-test-packages.sh
	@$(PY) -m compileall -q bridge connectors ddb_bridge tests >/dev/null
	@$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

## make docs: the documentation site (MkDocs, Material theme) from docs/ into site/; --strict
## fails on a broken link or anchor and on a page missing from the nav (tests/unit/test_docs_site.py
## runs the same build in make test). The home page is README.md and the configuration
## reference is generated from the settings models (tools/mkdocs_hooks.py).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict
	@echo "docs: open site/index.html, or run make docs-serve"

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --strict

lint: $(STAMP)
	$(VENV)/bin/ruff check bridge connectors ddb_bridge tests benchmarks examples
	$(VENV)/bin/ruff format --check bridge connectors ddb_bridge tests benchmarks examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format bridge connectors ddb_bridge tests benchmarks examples
	$(VENV)/bin/ruff check --fix bridge connectors ddb_bridge tests benchmarks examples

## make demo: the whole pipeline on embedded defaults (moto, SQLite, and Apache Kafka when Java 17+
## can run it, else the pip-installed Tansu broker; DEMO_ARGS="--broker tansu" to choose); no
## Docker, no AWS.
demo: $(STAMP)
	$(VENV)/bin/ddb-bridge demo $(DEMO_ARGS)

## make dashboard-png: regenerate docs/dashboard.png, a headless-Chromium screenshot of the
## dashboard of `ddb-bridge demo --keep-up $(DEMO_ARGS)` (tools/dashboard_screenshot.py).
dashboard-png: $(STAMP)
	$(PY) tools/dashboard_screenshot.py --demo-args "$(DEMO_ARGS)"

## make bench: every benchmark in benchmarks/, each printing its figures beside a same-run baseline.
bench: $(STAMP)
	$(PY) -m benchmarks $(BENCH_ARGS)

## make soak: `stream` and `apply` for 30 minutes under a steady write rate with a back-fill
## every 5 minutes; RSS, fds, threads and lag sampled, a verdict per process, and
## benchmarks/results/soak.json + soak.png. Shorter: make soak SOAK_ARGS="--minutes 5".
soak: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m benchmarks.soak $(SOAK_ARGS)

## make chaos: the fault-injection suite (tests/chaos) at full size: 20,000 writes over 2,000
## keys while `stream`, `backfill --from scan` and two `apply` workers are SIGKILLed, the broker
## and PostgreSQL are stopped and started, and a poison record is injected; then verify and the
## checkpoint/offset invariants. The seed is printed; CHAOS_SEED=N re-runs it. CHAOS_WRITES,
## CHAOS_KEYS, CHAOS_RATE, CHAOS_KILLS change the size; CHAOS_ARGS goes to pytest. The summary
## goes to $(CHAOS_REPORT). (`make test` runs the same test at a reduced size.)
CHAOS_REPORT ?= benchmarks/results/chaos.json
CHAOS_ARGS ?=
chaos: $(STAMP)
	@sh tools/ensure-java-maven.sh
	CHAOS_WRITES=$${CHAOS_WRITES:-20000} CHAOS_KEYS=$${CHAOS_KEYS:-2000} \
	CHAOS_RATE=$${CHAOS_RATE:-60} CHAOS_KILLS=$${CHAOS_KILLS:-20} CHAOS_REPORT=$(CHAOS_REPORT) \
	$(PY) -m pytest -m chaos tests/chaos -s -p no:cacheprovider $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
