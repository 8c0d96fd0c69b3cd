#!/usr/bin/env bash
# Apply an overlay to the current kubectl context: `make deploy-overlay ENV=staging|prod|dev`.
#
# 1. The secret env files the base's secretGenerators read are written from CTLOOP_* variables
#    (scripts/secret_envs.py; a file that exists is kept), or the script stops naming each
#    missing variable before anything is applied.
# 2. First deploy (no SeldonDeployment yet): `kubectl apply -k` the whole overlay. Later ones:
#    everything but the objects the pipeline's deploy step owns (label
#    ctloop.dev/model-owner=deploy-step: the SeldonDeployment, whose predictors it manages), then
#    only the model containers' image of the live SeldonDeployment is moved to the overlay's
#    serving image (scripts/seldon_image_patch.py): the served model stays, its pods roll.
# 3. Waits for the overlay's Deployments and StatefulSets to roll out, and for the
#    SeldonDeployment to be Available again when it already served a model. On a first deploy
#    it waits for the MinIO setup Job instead, and not for the feature server, which becomes
#    ready only once the first pipeline run has written Feast's registry (manifests/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

env_name=${1:-}
[[ -n "$env_name" ]] || die "usage: deploy_overlay.sh ENV"
KUBECTL=${KUBECTL:-.venv-tools/bin/kubectl}
PYTHON=${PYTHON:-.venv/bin/python}
ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-10m}
SDEP=seldondeployments.machinelearning.seldon.io/flight-delay
NEEDS_FIRST_RUN=deployment.apps/feature-server
overlay="manifests/overlays/$env_name"
namespace=$(overlay_namespace "$env_name")

"$PYTHON" scripts/secret_envs.py manifests/base/secrets

# --ignore-not-found: empty when absent; any other failure (no access, no Seldon CRD) stops here
existing=$("$KUBECTL" -n "$namespace" get "$SDEP" --ignore-not-found -o name)
if [[ -n "$existing" ]]; then
  echo "SeldonDeployment exists in $namespace: applying the rest, then moving its serving image"
  "$KUBECTL" apply -k "$overlay" -l 'ctloop.dev/model-owner!=deploy-step'
  image=$("$PYTHON" scripts/set_image_tag.py "$overlay" --show --image ghcr.io/ctloop/serving)
  live=$("$KUBECTL" -n "$namespace" get "$SDEP" -o json)
  patch=$("$PYTHON" scripts/seldon_image_patch.py "$image" <<<"$live")
  if [[ "$patch" != "[]" ]]; then
    "$KUBECTL" -n "$namespace" patch "$SDEP" --type=json -p "$patch"
  else
    echo "model containers already run $image"
  fi
else
  echo "first deploy to $namespace: applying the whole overlay (the model pods wait for the first pipeline run)"
  "$KUBECTL" apply -k "$overlay"
fi

# the operator's own Deployments (label seldon-deployment-id) are checked through the SeldonDeployment
workloads=$("$KUBECTL" -n "$namespace" get deployments,statefulsets \
  -l 'app.kubernetes.io/part-of=ctloop,!seldon-deployment-id' -o name)
readarray -t names <<<"$workloads"
for name in "${names[@]}"; do
  if [[ -z "$name" ]]; then
    continue
  elif [[ -z "$existing" && "$name" == "$NEEDS_FIRST_RUN" ]]; then
    echo "not waiting for $name: it is ready after the first pipeline run"
  else
    "$KUBECTL" -n "$namespace" rollout status "$name" --timeout="$ROLLOUT_TIMEOUT"
  fi
done
if [[ -n "$existing" ]]; then
  "$KUBECTL" -n "$namespace" wait "$SDEP" --for=jsonpath='{.status.state}'=Available --timeout="$ROLLOUT_TIMEOUT"
else
  "$KUBECTL" -n "$namespace" wait job/minio-setup --for=condition=complete --timeout="$ROLLOUT_TIMEOUT"
fi
echo "deployed overlay $env_name to namespace $namespace"
