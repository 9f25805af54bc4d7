#!/usr/bin/env bash
# Runs every test of the workspace. Installs what the tests need on a fresh Debian
# machine (scripts/install-deps.sh: DCMTK, tesseract-ocr, chromium, the media tools,
# pynetdicom, Pillow, dicomweb-client). Set PACS_TEST_DATABASE_URL=postgres://... to run the index tests
# against PostgreSQL as well as SQLite; without it those variants say SKIPPED.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ -z "${PACS_TEST_DATABASE_URL:-}" ]; then
  echo "PACS_TEST_DATABASE_URL not set: PostgreSQL variants of the gateway tests will be SKIPPED"
fi
cargo test --workspace --all-targets
# Coverage-guided fuzzing, a short bounded run per target (README "Fuzzing").
if [ "${PACS_FUZZ_SECS:-20}" != 0 ]; then
  scripts/fuzz.sh "${PACS_FUZZ_SECS:-20}"
fi
# systemd units (systemd-analyze verify) and, when a container engine answers, the images.
scripts/check-deploy.sh --images
