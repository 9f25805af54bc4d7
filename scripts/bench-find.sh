#!/usr/bin/env bash
# C-FIND benchmark: bulk-loads INSTANCES synthetic pseudonymous instances (default
# 1,000,000 in INSTANCES/20 studies over 5 facilities) into a gateway index on SQLite and,
# when it answers (PACS_TEST_DATABASE_URL or postgres://postgres@127.0.0.1:5432/postgres;
# database pacs_find_bench is dropped and recreated), PostgreSQL; times C-FIND over one
# association with a clinician's password (p50/p99/max per kind of query); then compares
# with Orthanc on the same data at a smaller size (--orthanc N, default 20000; 0 skips).
# Usage: scripts/bench-find.sh [INSTANCES] [--orthanc N] [--picks N] [--no-postgres]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v Orthanc >/dev/null; then
  echo "installing Orthanc for the comparison ..."
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc >/dev/null &&
    { service orthanc stop >/dev/null 2>&1 || true; }; } ||
    echo "cannot install Orthanc: the comparison will be skipped"
fi
cargo build --release -q -p gateway -p tests
exec "${CARGO_TARGET_DIR:-target}/release/find-bench" "${1:-1000000}" "${@:2}"
