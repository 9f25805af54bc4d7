#!/usr/bin/env bash
# Checks the packaging under deploy/: the systemd units with `systemd-analyze verify`
# (when systemd-analyze exists) against the binaries built here, and the container
# images by building them (only when a container engine answers). Prints what it
# skipped and why. Usage: scripts/check-deploy.sh [--images]
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
status=0

if command -v systemd-analyze >/dev/null; then
  for bin in pacs-gateway pacs-client; do
    [ -x "$target/debug/$bin" ] || cargo build -q -p "${bin#pacs-}" --bin "$bin"
  done
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  for unit in deploy/systemd/*.service; do
    name="$(basename "$unit")"
    bin="${name%.service}"
    # Point ExecStart at the binary built here; everything else as shipped.
    sed "s|/usr/local/bin/$bin|$target/debug/$bin|" "$unit" > "$work/$name"
  done
  if SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$work"/*.service; then
    echo "systemd units: ok"
  else
    echo "systemd units: systemd-analyze verify failed" >&2
    status=1
  fi
else
  echo "systemd units: SKIPPED (no systemd-analyze)"
fi

engine=""
for candidate in docker podman; do
  if command -v "$candidate" >/dev/null && timeout 10 "$candidate" info >/dev/null 2>&1; then
    engine="$candidate"
    break
  fi
done
if [ "${1:-}" = "--images" ] && [ -n "$engine" ]; then
  commit="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
  for image in gateway client; do
    "$engine" build -f "deploy/docker/$image.Dockerfile" \
      --build-arg "PACS_GIT_COMMIT=$commit" -t "pacs-$image:check" . || status=1
    "$engine" run --rm "pacs-$image:check" --version || status=1
  done
else
  echo "container images: SKIPPED (${engine:-no container engine answers}; pass --images to build)"
fi
exit "$status"
