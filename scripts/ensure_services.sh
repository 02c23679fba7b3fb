#!/usr/bin/env bash
# Checks that the PostgreSQL and Redis the test suite uses answer, and starts the local ones
# (the same way this kind of machine starts them) when they are installed but stopped.
# TEST_POSTGRES_URL and TEST_REDIS_URL point the suite elsewhere; those are only checked.
set -euo pipefail

pg_url=${TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
redis_url=${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}

pg_up() { pg_isready -q -d "$pg_url" >/dev/null 2>&1; }
redis_up() { [ "$(redis-cli -u "$redis_url" ping 2>/dev/null)" = "PONG" ]; }

wait_for() {
  local what=$1 check=$2
  for _ in $(seq 1 50); do
    if "$check"; then return 0; fi
    sleep 0.2
  done
  echo "$what was started but does not answer" >&2
  exit 1
}

if ! command -v pg_isready >/dev/null || ! command -v psql >/dev/null; then
  echo "PostgreSQL client tools are missing: apt-get install postgresql postgresql-client" >&2
  exit 1
fi
if ! pg_up; then
  if [ -n "${TEST_POSTGRES_URL:-}" ]; then
    echo "PostgreSQL at TEST_POSTGRES_URL does not answer" >&2
    exit 1
  fi
  if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    echo "PostgreSQL is not installed: apt-get install postgresql (trust auth on 127.0.0.1)" >&2
    exit 1
  fi
  echo "starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  wait_for PostgreSQL pg_up
fi

if ! command -v redis-cli >/dev/null; then
  echo "Redis tools are missing: apt-get install redis-server redis-tools" >&2
  exit 1
fi
if ! redis_up; then
  if [ -n "${TEST_REDIS_URL:-}" ]; then
    echo "Redis at TEST_REDIS_URL does not answer" >&2
    exit 1
  fi
  if ! command -v redis-server >/dev/null; then
    echo "Redis is not installed: apt-get install redis-server" >&2
    exit 1
  fi
  echo "starting Redis" >&2
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for Redis redis_up
fi

echo "PostgreSQL and Redis answer" >&2
