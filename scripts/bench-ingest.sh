#!/usr/bin/env bash
# Ingest benchmark: gateway vs DCMTK storescp (plain and TLS) and Orthanc when
# installed, 1 and 4 associations, on COUNT synthetic 512x512x16 CT instances.
# Usage: scripts/bench-ingest.sh [COUNT]   (default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v storescu >/dev/null || { apt-get update -qq && apt-get install -y -qq dcmtk; }
cargo build --release -q -p gateway -p tests
export PACS_GATEWAY_BIN="$PWD/target/release/pacs-gateway"
exec target/release/ingest-bench "${1:-1000}"
