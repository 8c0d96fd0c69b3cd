# Shared by the delivery scripts (sourced, not run): errors, an overlay's namespace, port-forwards.
# shellcheck shell=bash

# die MESSAGE...: one error line on stderr, exit 1
die() {
  echo "error: $*" >&2
  exit 1
}

# overlay_namespace ENV: the `namespace:` an overlay sets (manifests/overlays/ENV/kustomization.yaml)
overlay_namespace() {
  local file="manifests/overlays/$1/kustomization.yaml" namespace
  [[ -f "$file" ]] || die "no overlay manifests/overlays/$1"
  namespace=$(sed -n 's/^namespace:[[:space:]]*["'\'']\{0,1\}\([a-z0-9-]*\).*/\1/p' "$file")
  [[ -n "$namespace" ]] || die "$file sets no namespace"
  echo "$namespace"
}

PORT_FORWARD_PIDS=()

# port_forward NAMESPACE SERVICE LOCAL_PORT REMOTE_PORT: `kubectl port-forward` in the background
# (on 127.0.0.1), returning once the local port accepts connections; stop_port_forwards ends it.
port_forward() {
  local namespace=$1 service=$2 local_port=$3 remote_port=$4 log pid
  log=$(mktemp)
  "${KUBECTL:?}" -n "$namespace" port-forward "svc/$service" "$local_port:$remote_port" >"$log" 2>&1 &
  pid=$!
  PORT_FORWARD_PIDS+=("$pid")
  for _ in $(seq 1 60); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$local_port") 2>/dev/null; then
      rm -f "$log"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$log" >&2
      rm -f "$log"
      die "kubectl port-forward to $namespace/svc/$service exited"
    fi
    sleep 1
  done
  cat "$log" >&2
  rm -f "$log"
  die "kubectl port-forward to $namespace/svc/$service: 127.0.0.1:$local_port not open after 60 s"
}

stop_port_forwards() {
  local pid
  for pid in "${PORT_FORWARD_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  PORT_FORWARD_PIDS=()
}
