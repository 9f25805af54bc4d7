#!/usr/bin/env bash
# DICOMweb benchmark (issue 13): QIDO-RS study search on an index bulk-loaded with
# INSTANCES synthetic pseudonymous instances (default 1,000,000) on SQLite and, when it
# answers (PACS_TEST_DATABASE_URL or postgres://postgres@127.0.0.1:5432/postgres;
# database pacs_dicomweb_bench is dropped and recreated), PostgreSQL; then the same
# searches and WADO-RS retrieval of CT instances against Orthanc 1.10 + its DICOMweb
# plugin on the same data (--orthanc N instances, default 20000; 0 skips), interleaved
# rounds, medians. The gateway runs as the release `pacs-gateway serve` over HTTPS.
# Usage: scripts/bench-dicomweb.sh [INSTANCES] [--orthanc N] [--wado N] [--rounds N]
#        [--picks N] [--clients N] [--no-postgres] [--no-sqlite]
# (--orthanc 0 --no-sqlite: only the PostgreSQL QIDO-RS part at scale)
set -euo pipefail
cd "$(dirname "$0")/.."
# "--orthanc 0" skips the comparison: nothing to install then.
case " $* " in *" --orthanc 0 "*) wants_orthanc=0 ;; *) wants_orthanc=1 ;; esac
if [ "$wants_orthanc" = 1 ] &&
  { ! command -v Orthanc >/dev/null || [ ! -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; }; then
  echo "installing Orthanc and its DICOMweb plugin for the comparison ..."
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb >/dev/null &&
    { service orthanc stop >/dev/null 2>&1 || true; }; } ||
    echo "cannot install Orthanc: the comparison will be skipped"
fi
command -v storescu >/dev/null || { echo "storescu missing: apt-get install -y dcmtk" >&2; exit 1; }
cargo build --release -q -p gateway -p tests
export PACS_GATEWAY_BIN="${PACS_GATEWAY_BIN:-${CARGO_TARGET_DIR:-target}/release/pacs-gateway}"
exec "${CARGO_TARGET_DIR:-target}/release/dicomweb-bench" "${1:-1000000}" "${@:2}"
