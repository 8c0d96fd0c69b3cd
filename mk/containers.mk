# Containers: the two images and the local end-to-end run in them. Included by the Makefile.
#
#   make images [SHA=...]        platform and serving images, tagged by git SHA (default: HEAD)
#   make container-tools         podman, buildah, runc, mmdebstrap from Debian (when the engine is podman)
#   make e2e-local               the pipeline in containers on 2013 Jan-Mar, then serving from its image
#
# The engine is docker where a Docker engine answers (GitHub's runners), podman otherwise.
# The base is the official Python image when the engine has it or can pull it; where no
# registry is reachable, a stand-in with its layout is built once and cached
# (scripts/base_image.sh). No build forces a pull.

PLATFORM_IMAGE := ghcr.io/ctloop/platform
SERVING_IMAGE := ghcr.io/ctloop/serving
SHA ?= $(shell git rev-parse HEAD)
ENGINE ?= $(shell docker info >/dev/null 2>&1 && echo docker || echo podman)
PYTHON_BASE := python:3.12.12-slim-bookworm
STANDIN_BASE := localhost/ctloop/python-base:3.12-bookworm
# a CA bundle for the package index behind a TLS proxy, given to the builds as a secret (not kept)
CA_BUNDLE ?= $(or $(SSL_CERT_FILE),$(wildcard /etc/ssl/certs/ca-certificates.crt))
CONTAINER_PACKAGES := podman buildah runc mmdebstrap
# extra flags for both builds (e.g. --no-cache: `make bench` times a cold build)
BUILD_FLAGS ?=
export CONTAINERS_CONF := $(CURDIR)/images/containers.conf

.PHONY: images images-clean container-tools e2e-local

container-tools: ## podman, buildah, runc and mmdebstrap from Debian, when missing (engine podman only)
	@if [ "$(ENGINE)" = podman ]; then \
	  for pkg in $(CONTAINER_PACKAGES); do \
	    dpkg -s $$pkg >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	      DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(CONTAINER_PACKAGES) >/dev/null; break; }; \
	  done; \
	fi

images: container-tools ## build the platform and serving images tagged by git SHA (SHA=..., default HEAD)
	@[[ "$(SHA)" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$$ ]] || { echo "error: SHA '$(SHA)' is not an image tag" >&2; exit 1; }
	@base=$$(PYTHON=$(PYTHON) scripts/base_image.sh $(ENGINE) $(PYTHON_BASE) $(STANDIN_BASE)) && \
	secret=() && if [ -s "$(CA_BUNDLE)" ]; then secret=(--secret "id=ca_bundle,src=$(CA_BUNDLE)"); fi && \
	for image in platform serving; do \
	  name=$$([ $$image = platform ] && echo $(PLATFORM_IMAGE) || echo $(SERVING_IMAGE)); \
	  echo "$(ENGINE) build $$name:$(SHA) on $$base"; \
	  $(ENGINE) build -q $(BUILD_FLAGS) -f images/$$image/Dockerfile --build-arg PYTHON_IMAGE="$$base" "$${secret[@]}" \
	    --label org.opencontainers.image.revision=$(SHA) -t $$name:$(SHA) . >/dev/null || exit 1; \
	done

images-clean: ## remove ctloop's images of other commits and dangling layers (the next build starts cold)
	@$(ENGINE) images --format '{{.Repository}}:{{.Tag}}' | grep -E '^ghcr.io/ctloop/(platform|serving):' | \
	  grep -v ":$(SHA)$$" | xargs -r $(ENGINE) rmi >/dev/null; $(ENGINE) image prune -f >/dev/null

e2e-local: setup images ## both images, the pipeline in containers on 2013 Jan-Mar, then a prediction served from the image
	@# the containers' user must reach the tests' folders: pytest keeps its own base folder private
	@# to its user (and makes it so again at every start), so these tests use a base of their own
	CTLOOP_CONTAINERS=1 $(BIN)/pytest tests/containers --basetemp="$${TMPDIR:-/tmp}/ctloop-e2e-$$(id -u)" $(PYTEST_ARGS)
	@left=$$(podman ps -aq --filter label=ctloop.owner=ctloop 2>/dev/null); \
	if [ -n "$$left" ]; then echo "error: containers left behind: $$left" >&2; podman rm -f $$left >/dev/null; exit 1; fi
