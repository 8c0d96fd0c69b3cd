#!/usr/bin/env bash
# End-to-end on kind: `make e2e-kind` (nightly and on demand in .github/workflows/e2e-kind.yml).
#
#  1. a kind cluster (its own kubeconfig under $E2E_DIR, the user's is left alone);
#  2. both images built for the checkout's SHA (`make images`), tagged also `dev` (the dev
#     overlay's tag) and loaded into kind;
#  3. the Prometheus Operator CRDs (ServiceMonitor, PrometheusRule: the base has one of each),
#     KFP standalone (cluster-scoped resources + env/platform-agnostic), the Seldon Core v1
#     operator (Helm chart seldon-core-operator);
#  4. the dev overlay through `make deploy-overlay ENV=dev` with throw-away generated secrets, and
#     the pipeline pods' S3 Secret in `kubeflow` ([pipeline] s3_secret of config/dev.toml);
#  5. the pipeline uploaded as version SHA (`make pipeline-upload`), one run on a small window,
#     waited for until it SUCCEEDED (it trains, gates, registers and deploys the champion);
#  6. the SeldonDeployment Available with a real model version, and one request through Seldon's
#     executor that must return a probability.
# On failure, pods, events and logs go to $E2E_DIR/diagnostics. The cluster is deleted at the end
# unless KEEP_CLUSTER=1.
#
# Needs docker, kind, helm, git and curl; KUBECTL, BIN and SHA come from make. Knobs: KIND_CLUSTER,
# KFP_VERSION, SELDON_CHART_VERSION, PROMETHEUS_OPERATOR_VERSION, E2E_START, E2E_END, E2E_RUN_TIMEOUT_S.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

KUBECTL=${KUBECTL:-.venv-tools/bin/kubectl}
BIN=${BIN:-.venv/bin}
MAKE=${MAKE:-make}
SHA=${SHA:-$(git rev-parse HEAD)}
CLUSTER=${KIND_CLUSTER:-ctloop-e2e}
KFP_VERSION=${KFP_VERSION:-2.17.0}
# the chart of the seldon-core tag our SeldonDeployment schema comes from (manifests/schemas/README.md)
SELDON_CHART_VERSION=${SELDON_CHART_VERSION:-1.19.0-rc.1}
PROMETHEUS_OPERATOR_VERSION=${PROMETHEUS_OPERATOR_VERSION:-v0.93.0}
# the window `make run` trains on: the last 31 days are the evaluation window, and it is blessed
E2E_START=${E2E_START:-2013-01-01}
E2E_END=${E2E_END:-2013-03-31}
E2E_RUN_TIMEOUT_S=${E2E_RUN_TIMEOUT_S:-3600}
E2E_DIR=${E2E_DIR:-data/e2e}
CONFIG=config/dev.toml
SDEP=seldondeployments.machinelearning.seldon.io/flight-delay
KFP_PORT=18080
SELDON_PORT=18000

for tool in docker kind helm git curl; do
  command -v "$tool" >/dev/null || die "$tool is not installed (the workflow installs kind and helm)"
done
[[ -x "$KUBECTL" && -x "$BIN/ctloop" ]] || die "run it as \`make e2e-kind\` (it installs kubectl and the venv)"
NAMESPACE=$(overlay_namespace dev)
mkdir -p "$E2E_DIR/diagnostics"
export KUBECONFIG="$PWD/$E2E_DIR/kubeconfig"

step() { echo "==> $*"; }

collect_diagnostics() {
  local out="$E2E_DIR/diagnostics" ns pod
  echo "collecting diagnostics into $out" >&2
  "$KUBECTL" get pods -A -o wide >"$out/pods.txt" 2>&1 || true
  "$KUBECTL" get events -A --sort-by=.lastTimestamp >"$out/events.txt" 2>&1 || true
  "$KUBECTL" -n "$NAMESPACE" get "$SDEP" -o yaml >"$out/seldondeployment.yaml" 2>&1 || true
  for ns in "$NAMESPACE" kubeflow seldon-system; do
    for pod in $("$KUBECTL" -n "$ns" get pods -o name 2>/dev/null); do
      "$KUBECTL" -n "$ns" logs "$pod" --all-containers --prefix --tail=500 \
        >"$out/$ns.${pod#pod/}.log" 2>&1 || true
    done
  done
}

cleanup() {
  local status=$?
  stop_port_forwards
  if ((status != 0)); then
    collect_diagnostics
  fi
  if [[ "${KEEP_CLUSTER:-}" != 1 ]]; then
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  exit "$status"
}
trap cleanup EXIT

step "kind cluster $CLUSTER"
clusters=$(kind get clusters)
if grep -qx "$CLUSTER" <<<"$clusters"; then
  kind export kubeconfig --name "$CLUSTER"
else
  kind create cluster --name "$CLUSTER" --wait 180s
fi

step "images for $SHA"
"$MAKE" images SHA="$SHA"
for image in ghcr.io/ctloop/platform ghcr.io/ctloop/serving; do
  docker tag "$image:$SHA" "$image:dev"
  kind load docker-image --name "$CLUSTER" "$image:$SHA" "$image:dev"
done

step "Prometheus Operator CRDs $PROMETHEUS_OPERATOR_VERSION"
crds="https://raw.githubusercontent.com/prometheus-operator/prometheus-operator/$PROMETHEUS_OPERATOR_VERSION/example/prometheus-operator-crd"
for crd in servicemonitors prometheusrules; do
  "$KUBECTL" apply --server-side -f "$crds/monitoring.coreos.com_$crd.yaml"
done

step "Kubeflow Pipelines $KFP_VERSION (standalone)"
kfp="github.com/kubeflow/pipelines/manifests/kustomize"
"$KUBECTL" apply -k "$kfp/cluster-scoped-resources?ref=$KFP_VERSION"
"$KUBECTL" wait --for condition=established --timeout=120s crd/applications.app.k8s.io
"$KUBECTL" apply -k "$kfp/env/platform-agnostic?ref=$KFP_VERSION"
"$KUBECTL" -n kubeflow wait --for=condition=Available deployment --all --timeout=20m

step "Seldon Core operator $SELDON_CHART_VERSION"
seldon_args=(--namespace seldon-system --create-namespace --set usageMetrics.enabled=false --wait --timeout 10m)
if ! helm upgrade --install seldon-core seldon-core-operator --repo https://storage.googleapis.com/seldon-charts \
  --version "$SELDON_CHART_VERSION" "${seldon_args[@]}"; then
  echo "chart $SELDON_CHART_VERSION not in the chart repository: installing it from the v$SELDON_CHART_VERSION tag"
  rm -rf "$E2E_DIR/seldon-core"
  git clone --quiet --depth 1 --branch "v$SELDON_CHART_VERSION" https://github.com/SeldonIO/seldon-core "$E2E_DIR/seldon-core"
  helm upgrade --install seldon-core "$E2E_DIR/seldon-core/helm-charts/seldon-core-operator" "${seldon_args[@]}"
fi

step "dev overlay"
secret() { "$BIN/python" -c 'import secrets; print(secrets.token_hex(16))'; }
CTLOOP_POSTGRES_PASSWORD=$(secret)
CTLOOP_MINIO_ROOT_PASSWORD=$(secret)
CTLOOP_S3_ACCESS_KEY_ID=ctloop
CTLOOP_S3_SECRET_ACCESS_KEY=$(secret)
export CTLOOP_POSTGRES_PASSWORD CTLOOP_MINIO_ROOT_PASSWORD CTLOOP_S3_ACCESS_KEY_ID CTLOOP_S3_SECRET_ACCESS_KEY
"$MAKE" deploy-overlay ENV=dev
# the pipeline pods run in `kubeflow` (KFP standalone) and read the same MinIO user from there
s3_secret=$("$BIN/python" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["pipeline"]["s3_secret"])' "$CONFIG")
"$KUBECTL" -n kubeflow create secret generic "$s3_secret" --from-env-file=manifests/base/secrets/s3.env \
  --dry-run=client -o yaml | "$KUBECTL" apply -f -

step "pipeline version $SHA: upload and run $E2E_START..$E2E_END"
port_forward kubeflow ml-pipeline-ui "$KFP_PORT" 80
export KFP_HOST="http://127.0.0.1:$KFP_PORT"
"$MAKE" pipeline-upload ENV=dev SHA="$SHA"
started=$("$BIN/ctloop" pipeline submit --host "$KFP_HOST" --pipeline-version "$SHA" \
  --start "$E2E_START" --end "$E2E_END" --config "$CONFIG")
echo "$started"
run_id=$(sed -n 's/^started run \([^ ]*\) .*/\1/p' <<<"$started")
[[ -n "$run_id" ]] || die "no run id in: $started"
deadline=$((SECONDS + E2E_RUN_TIMEOUT_S))
while true; do
  run=$(curl -fsS "$KFP_HOST/apis/v2beta1/runs/$run_id")
  state=$("$BIN/python" -c 'import json, sys; print(json.load(sys.stdin).get("state", ""))' <<<"$run")
  case "$state" in
    SUCCEEDED) break ;;
    FAILED | CANCELED | CANCELING | SKIPPED) die "pipeline run $run_id ended $state" ;;
  esac
  ((SECONDS < deadline)) || die "pipeline run $run_id still $state after $E2E_RUN_TIMEOUT_S s"
  sleep 20
done
echo "pipeline run $run_id SUCCEEDED"

step "SeldonDeployment serves the champion"
"$KUBECTL" -n "$NAMESPACE" wait "$SDEP" --for=jsonpath='{.status.state}'=Available --timeout=15m
version=$("$KUBECTL" -n "$NAMESPACE" get "$SDEP" -o jsonpath='{.metadata.labels.ctloop\.dev/model-version}')
[[ "$version" =~ ^[1-9][0-9]*$ ]] || die "the SeldonDeployment still serves the placeholder (model version '$version')"
port_forward "$NAMESPACE" flight-delay-champion "$SELDON_PORT" 8000
request='{"jsonData": {"flights": [{"origin": "JFK", "carrier": "B6", "tailnum": "N503JB", "dest": "BOS",
  "sched_dep": "2013-04-02T08:30:00", "distance": 187}]}}'
response=$(curl -fsS --retry 5 --retry-all-errors --retry-delay 3 -H 'Content-Type: application/json' \
  -d "$request" "http://127.0.0.1:$SELDON_PORT/api/v1.0/predictions")
echo "$response"
RESPONSE=$response "$BIN/python" - <<'PY'
import json
import os

body = json.loads(os.environ["RESPONSE"])
p = body["jsonData"]["probabilities"]
assert len(p) == 1 and 0.0 <= p[0] <= 1.0, f"expected one probability, got {p}"
print(f"prediction: p(arrives 15+ min late) = {p[0]:.4f}, tags {body['meta']['tags']}")
PY
echo "e2e on kind passed: pipeline version $SHA, run $run_id, model version $version"
