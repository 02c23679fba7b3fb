#!/usr/bin/env bash
# Invalidates cached objects of a CloudFront distribution (the ID configure_cdn.sh printed).
#
# Prints the invalidation ID, and only that, on stdout; progress goes to stderr. With --wait it
# polls until CloudFront reports the invalidation complete. Credentials, profile, region and
# endpoint come from the standard AWS environment (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, ...).
# CDN_WAIT_INTERVAL_SECONDS (default 15) and CDN_WAIT_TIMEOUT_SECONDS (default 1800) tune --wait.
set -euo pipefail

readonly program=${0##*/}

usage() {
  cat >&2 <<EOF
usage: $program [--wait] <distribution-id> [path ...]

Creates an invalidation of the given paths (default '/*') on the CloudFront distribution and
prints its ID on stdout. Each path starts with '/'; '*' is allowed at the end. --wait polls
until the invalidation has completed. Uses the AWS CLI with the standard AWS environment.
EOF
}

# tr rather than ${var,,}: macOS still ships bash 3.2.
lowercase() {
  tr '[:upper:]' '[:lower:]' <<<"$1"
}

usage_error() {
  echo "$program: $1" >&2
  usage
  exit 2
}

wait_for_completion=false
positional=()
for argument in "$@"; do
  case $argument in
    -h | --help)
      usage
      exit 0
      ;;
    --wait) wait_for_completion=true ;;
    -*) usage_error "unknown option '$argument'" ;;
    *) positional+=("$argument") ;;
  esac
done

if [[ ${#positional[@]} -eq 0 ]]; then
  usage_error "missing the distribution ID"
fi
distribution_id=${positional[0]}
paths=("${positional[@]:1}")
if [[ ${#paths[@]} -eq 0 ]]; then
  paths=("/*")
fi

if [[ ! $distribution_id =~ ^[A-Z0-9]{1,64}$ ]]; then
  usage_error "'$distribution_id' is not a CloudFront distribution ID (letters A-Z and digits)"
fi
for path in "${paths[@]}"; do
  if [[ $path != /* ]]; then
    usage_error "path '$path' does not start with '/'"
  fi
done

interval_seconds=${CDN_WAIT_INTERVAL_SECONDS:-15}
timeout_seconds=${CDN_WAIT_TIMEOUT_SECONDS:-1800}
if [[ ! $interval_seconds =~ ^[0-9]+$ || ! $timeout_seconds =~ ^[0-9]+$ ]]; then
  usage_error "CDN_WAIT_INTERVAL_SECONDS and CDN_WAIT_TIMEOUT_SECONDS must be whole seconds"
fi

if ! command -v aws >/dev/null 2>&1; then
  echo "$program: the AWS CLI ('aws') is not on PATH; install it (pip install awscli)" >&2
  exit 127
fi

# AWS CLI v1 reads only AWS_DEFAULT_REGION; v2 prefers AWS_REGION. Honour AWS_REGION in both.
if [[ -n ${AWS_REGION:-} ]]; then
  export AWS_DEFAULT_REGION=$AWS_REGION
fi
export AWS_PAGER=""

echo "$program: invalidating ${#paths[@]} path(s) on distribution $distribution_id:" \
  "${paths[*]}" >&2
# --paths makes the CLI build the batch and a unique caller reference itself.
created=$(aws cloudfront create-invalidation --output text \
  --query '[Invalidation.Id, Invalidation.Status]' \
  --distribution-id "$distribution_id" --paths "${paths[@]}")
read -r invalidation_id status <<<"$created"

if [[ ! $invalidation_id =~ ^[A-Z0-9]+$ ]]; then
  echo "$program: the AWS CLI answered without an invalidation ID: '$created'" >&2
  exit 1
fi
echo "$program: invalidation $invalidation_id is $status" >&2

if [[ $wait_for_completion == true ]]; then
  deadline=$((SECONDS + timeout_seconds))
  # CloudFront says "InProgress" and "Completed"; compare without regard to case all the same.
  while [[ $(lowercase "$status") != completed ]]; do
    if ((SECONDS >= deadline)); then
      echo "$program: invalidation $invalidation_id still $status after ${timeout_seconds}s" >&2
      exit 1
    fi
    sleep "$interval_seconds"
    status=$(aws cloudfront get-invalidation --output text --query Invalidation.Status \
      --distribution-id "$distribution_id" --id "$invalidation_id")
    echo "$program: invalidation $invalidation_id is $status" >&2
  done
fi

echo "$invalidation_id"
