#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian machine, and only what
# is missing: cmake (CharLS, the JPEG-LS codec, builds from source), DCMTK, tesseract-ocr
# with fonts-dejavu-core, chromium, the media export tools (xorriso, genisoimage,
# poppler-utils, fonts-noto-cjk, dicom3tools where Debian has it), and pynetdicom, Pillow and dicomweb-client into
# target/python.
# Called by scripts/test.sh, and by .ci/run before clippy builds anything.
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
# The browser test (client/tests/web_proxy.rs): Debian's headless Chromium opens a
# /rendered URL of the client's DICOMweb proxy.
if ! command -v chromium >/dev/null; then
  echo "installing chromium (headless browser test) ..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
# Export to returnable media (client/tests/export.rs, `pacs-client export`): xorriso makes
# the ISO 9660 + Joliet image, genisoimage's isoinfo lists it, fonts-noto-cjk is the
# CJK-capable font embedded in the index and label PDFs, poppler-utils (pdftotext,
# pdfimages) reads them back, dicom3tools' dciodvfy checks the DICOMDIR.
if ! command -v xorriso >/dev/null || ! command -v isoinfo >/dev/null || ! command -v pdftotext >/dev/null ||
  [ ! -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ]; then
  echo "installing xorriso, genisoimage, poppler-utils and fonts-noto-cjk (media export) ..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xorriso genisoimage poppler-utils fonts-noto-cjk >/dev/null
fi
if ! command -v dciodvfy >/dev/null && apt-cache show dicom3tools >/dev/null 2>&1; then
  echo "installing dicom3tools (dciodvfy) ..."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dicom3tools >/dev/null || true
fi
# pynetdicom goes into target/python, not site-wide: its storescu/findscu/getscu/... scripts
# would otherwise shadow DCMTK's on PATH. gateway/tests/pynetdicom.rs looks there.
PYTHONPATH="$PWD/target/python" python3 -c 'import pynetdicom' 2>/dev/null ||
  python3 -m pip install -q --target target/python pynetdicom
PYTHONPATH="$PWD/target/python" python3 -c 'import PIL' 2>/dev/null ||
  python3 -m pip install -q --target target/python pillow
# DICOMweb tests (gateway/tests/dicomweb_client.rs): an independent DICOMweb client.
PYTHONPATH="$PWD/target/python" python3 -c 'import dicomweb_client' 2>/dev/null ||
  python3 -m pip install -q --target target/python dicomweb-client
