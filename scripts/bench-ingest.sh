#!/usr/bin/env bash
# Ingest benchmark: gateway vs DCMTK storescp (plain and +tls) and Orthanc when
# installed, 1 and 4 associations, plus modality -> facility client -> gateway, on
# COUNT synthetic 512x512x16 CT instances; ROUNDS interleaved rounds, medians.
# Prints instances/s, MB/s, CPU per instance, peak RSS and the goal figures of the
# ingest work as ratios against the peers measured in the same run. Never fails on
# timing. Usage: scripts/bench-ingest.sh [COUNT] [ROUNDS] [--thumbnails]   (defaults 1000
# and 3; --thumbnails: only gateway TLS with background thumbnails off vs on)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v storescu >/dev/null || { apt-get update -qq && apt-get install -y -qq dcmtk; }
command -v Orthanc >/dev/null || echo "Orthanc not installed (apt-get install -y orthanc to compare with it)"
cargo build --release -q -p gateway -p client -p tests
target="${CARGO_TARGET_DIR:-target}"
export PACS_GATEWAY_BIN="$target/release/pacs-gateway"
export PACS_CLIENT_BIN="$target/release/pacs-client"
exec "$target/release/ingest-bench" "${1:-1000}" "${2:-3}" "${@:3}"
