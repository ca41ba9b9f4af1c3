# The two commands a user needs: `make run` and `make test`. Everything they need is installed
# from this repository's own files, so a fresh machine (and CI) gets the same result.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: venv run test lint typecheck unit e2e security oracle bench clean k8s-binaries test-assets gitea bench-k8s bench-plan postgres \
	bench-tracking bench-daemon bench-ha chromium browser vendor-js flux-binaries bench-flux bench-cron

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

## run: the daemon on examples-repo/ (a local git repo under .run/), local backend, SQLite
run: venv
	@bash scripts/run-examples.sh

## test: lint, type-check and the whole suite (installs PostgreSQL, chromium, the oracle and the test servers first)
test: venv lint typecheck postgres chromium oracle k8s-binaries test-assets
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check reconciler tests bench
	$(BIN)/ruff format --check reconciler
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

## e2e: the daemon end to end (`reconciler run` subprocesses, git over HTTP, local and Kubernetes backends, SQLite and PostgreSQL)
e2e: venv postgres k8s-binaries
	$(BIN)/python -m tests.infra.openapi_assets
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

## security: the security suite (tests/security/: the daemon as a process, real HTTP, a real Gitea)
security: venv postgres test-assets
	$(BIN)/python -m pytest tests/security $(PYTEST_ARGS)

## k8s-binaries: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kwok for
## the test cluster, built once per machine into ~/.cache. Under CI=true a failed build fails the run;
## elsewhere the tests that need the cluster are skipped, and the summary says so and why.
k8s-binaries:
	@if [ "$$CI" = "true" ]; then bash tests/cluster/build.sh; else bash tests/cluster/build.sh || \
		echo "WARNING: building the Kubernetes test binaries failed; tests marked k8s will be SKIPPED" >&2; fi

## test-assets: forge API descriptions (npm @octokit/openapi, Go module code.gitea.io/gitea), a real
## Gitea built from the Go module proxy and axe-core (npm) for the browser tests, all cached per
## machine under ~/.cache/polyaxon-reconciler
test-assets: venv gitea
	$(BIN)/python -m tests.infra.openapi_assets
	$(BIN)/python -m scripts.vendor_js --test-assets $${RECONCILER_TEST_CACHE:-$$HOME/.cache/polyaxon-reconciler}/npm

gitea: venv
	$(BIN)/python -m tests.infra.gitea_build

## oracle: the official polyaxon package, pinned, in its own venv (never a runtime dependency)
oracle: .oracle-venv/.installed

.oracle-venv/.installed: tests/oracle/requirements.txt
	@test -x .oracle-venv/bin/python || $(PYTHON) -m venv .oracle-venv
	.oracle-venv/bin/pip install -q -r tests/oracle/requirements.txt
	@touch $@

## bench: every benchmark in bench/, printing its figures
bench: venv oracle postgres k8s-binaries
	$(BIN)/python -m bench $(BENCH)

## bench-k8s: 500 Jobs through the Kubernetes backend vs `kubectl apply --server-side`; idle API calls
bench-k8s: venv k8s-binaries
	$(BIN)/python -m bench.k8s_apply

## flux-binaries: Flux's source-controller and kustomize-controller (v1.7.3, Flux 2.7) from the Go module
## proxy, once per machine into ~/.cache (about 6 min on 2 cores); only `make bench-flux` needs them
flux-binaries:
	bash bench/flux/build.sh

## bench-flux: commit -> 1,000 Jobs and one changed file, our daemon vs Flux on the same API server (~10 min)
bench-flux: venv k8s-binaries flux-binaries
	$(BIN)/python -m bench.flux_bench $(BENCH_ARGS)

## bench-cron: 10,000 schedules vs 10,000 CronJobs (kube-controller-manager): tick lag, requests, CPU, RSS (~15 min)
bench-cron: venv k8s-binaries
	$(BIN)/python -m bench.cron_bench $(BENCH_ARGS)

## bench-plan: compile+plan cost on a synthetic 10,000-operation repo, cold and after one change, in both layouts
bench-plan: venv
	$(BIN)/python -m bench.plan_bench

## postgres: PostgreSQL server binaries (Debian package) for the tests' throw-away servers
postgres:
	bash scripts/ensure-postgres.sh

## chromium: Debian's chromium for the dashboard's browser tests (driven by Playwright's Python client)
chromium:
	bash scripts/ensure-chromium.sh

## browser: the dashboard in a real browser (tests/browser/: clicks, live log, accessibility, screenshots)
browser: venv chromium
	$(BIN)/python -m scripts.vendor_js --test-assets $${RECONCILER_TEST_CACHE:-$$HOME/.cache/polyaxon-reconciler}/npm
	$(BIN)/python -m pytest tests/browser $(PYTEST_ARGS)

## vendor-js: fetch the dashboard's JavaScript from npm again at the pinned versions (then review and commit)
vendor-js: venv
	$(BIN)/python -m scripts.vendor_js

## bench-daemon: daemon memory and reconcile time with 10,000 ops and 1, 10, 30 days of runs (flat is the goal)
bench-daemon: venv
	$(BIN)/python -m bench.daemon_bench

## bench-ha: 300 repos over 3 replicas (both sharding modes): balance, failover after kill -9 and in a rolling restart, webhook hand-off
bench-ha: venv postgres k8s-binaries
	$(BIN)/python -m bench.ha_bench

bench-tracking: venv postgres
	$(BIN)/python -m bench.tracking_bench

clean:
	rm -rf $(VENV) .oracle-venv .mypy_cache .ruff_cache .pytest_cache
