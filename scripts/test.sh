#!/usr/bin/env bash
# Runs every test of the workspace. Installs what the tests need on a fresh Debian
# machine (DCMTK, pynetdicom, tesseract-ocr, fonts-dejavu-core, Pillow). Set PACS_TEST_DATABASE_URL=postgres://... to run the index tests
# against PostgreSQL as well as SQLite; without it those variants say SKIPPED.
set -euo pipefail
cd "$(dirname "$0")/.."
# The JPEG-LS codec (CharLS, built from source by charls-sys) needs cmake to build.
if ! command -v cmake >/dev/null; then
  echo "installing cmake (to build CharLS) ..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >/dev/null
fi
if ! command -v storescu >/dev/null || ! command -v dcmcjpeg >/dev/null; then
  echo "installing DCMTK (storescu, echoscu, dcmconv, dcmcjpeg, dcmcrle, dcmcjpls) ..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dcmtk >/dev/null
fi
# Burned-in text tests (client/tests/pixels.rs): tesseract reads the pixels, Pillow
# renders names into them with the DejaVu font.
if ! command -v tesseract >/dev/null || [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
  echo "installing tesseract-ocr and fonts-dejavu-core ..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr tesseract-ocr-eng fonts-dejavu-core >/dev/null
fi
# pynetdicom goes into target/python, not site-wide: its storescu/findscu/getscu/... scripts
# would otherwise shadow DCMTK's on PATH. gateway/tests/pynetdicom.rs looks there.
PYTHONPATH="$PWD/target/python" python3 -c 'import pynetdicom' 2>/dev/null ||
  python3 -m pip install -q --target target/python pynetdicom
PYTHONPATH="$PWD/target/python" python3 -c 'import PIL' 2>/dev/null ||
  python3 -m pip install -q --target target/python pillow
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
