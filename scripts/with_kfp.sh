#!/usr/bin/env bash
# Run a command with KFP_HOST set: `scripts/with_kfp.sh make pipeline-upload ENV=staging`.
#
# KFP_HOST given (e.g. an environment variable of the GitHub environment): the command runs as is.
# Otherwise the KFP API is reached through the current kubectl context, with a port-forward to the
# KFP UI service (it proxies /apis to the API server): no KFP credential beyond cluster access.
# KFP_NAMESPACE (kubeflow), KFP_SERVICE (ml-pipeline-ui), KFP_LOCAL_PORT (8080) adjust it.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

(($# > 0)) || die "usage: with_kfp.sh COMMAND [ARG...]"
if [[ -n "${KFP_HOST:-}" ]]; then
  exec "$@"
fi
KUBECTL=${KUBECTL:-.venv-tools/bin/kubectl}
[[ -x "$KUBECTL" ]] || die "no kubectl at $KUBECTL: run \`make delivery-tools\` (or set KUBECTL)"
port=${KFP_LOCAL_PORT:-8080}
trap stop_port_forwards EXIT
port_forward "${KFP_NAMESPACE:-kubeflow}" "${KFP_SERVICE:-ml-pipeline-ui}" "$port" 80
export KFP_HOST="http://127.0.0.1:$port"
"$@"
