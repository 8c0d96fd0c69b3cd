#!/usr/bin/env bash
# Promote a registry version to `champion` and deploy it: `make promote-model ENV=prod VERSION=7`.
#
# MLflow and the SeldonDeployment are reachable only inside the environment's namespace, so the
# promotion runs there as a one-off Job (scripts/promote_job.py derives it from the live monitor
# CronJob: same image, settings and S3 credentials; the pipeline's service account and network
# identity). The script waits for the Job, prints its log, and fails when the Job fails.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

env_name=${1:-}
version=${2:-}
[[ -n "$env_name" && -n "$version" ]] || die "usage: promote_model.sh ENV VERSION"
[[ "$version" =~ ^[0-9]+$ ]] || die "VERSION must be a registry version number, got '$version'"
KUBECTL=${KUBECTL:-.venv-tools/bin/kubectl}
PYTHON=${PYTHON:-.venv/bin/python}
TIMEOUT_S=${PROMOTE_TIMEOUT_S:-960}
namespace=$(overlay_namespace "$env_name")
job="ctloop-promote-v${version}-$(date +%s)"

cronjob=$("$KUBECTL" -n "$namespace" get cronjob monitor -o json)
"$PYTHON" scripts/promote_job.py --name "$job" --version "$version" <<<"$cronjob" |
  "$KUBECTL" -n "$namespace" apply -f -

deadline=$((SECONDS + TIMEOUT_S))
while true; do
  status=$("$KUBECTL" -n "$namespace" get job "$job" -o jsonpath='{.status.succeeded}/{.status.failed}')
  case "$status" in
    [1-9]*/*) break ;;
    */[1-9]*)
      "$KUBECTL" -n "$namespace" logs "job/$job" --tail=200 >&2 || true
      die "job $job failed: model version $version was not promoted in $namespace"
      ;;
  esac
  if ((SECONDS > deadline)); then
    "$KUBECTL" -n "$namespace" logs "job/$job" --tail=200 >&2 || true
    die "job $job did not finish within ${TIMEOUT_S} s"
  fi
  sleep 5
done
"$KUBECTL" -n "$namespace" logs "job/$job"
echo "model version $version is champion and deployed in $namespace"
