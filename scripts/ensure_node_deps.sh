#!/usr/bin/env bash
# Installs the Node packages of every harness kept in the repository (npm ci from its lock file),
# again only when the lock file is newer than what is installed.
set -euo pipefail

mapfile -t locks < <(git ls-files -- '*package-lock.json' 2>/dev/null || true)
[ "${#locks[@]}" -eq 0 ] && exit 0

if ! command -v npm >/dev/null; then
  echo "Node.js is missing (the tRPC client harness needs it): apt-get install nodejs npm" >&2
  exit 1
fi

for lock in "${locks[@]}"; do
  dir=$(dirname "$lock")
  stamp="$dir/node_modules/.package-lock.json"
  if [ ! -f "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
    echo "npm ci in $dir" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
