#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ (cargo-fuzz, libFuzzer) and runs each for a bounded
# time: scripts/fuzz.sh [seconds per target, default 60] [target ...].
# Seeds are in fuzz/corpus/<target> (kept in git, small); what libFuzzer finds goes to
# target/fuzz/corpus/<target>, crashes to target/fuzz/artifacts/<target>/. The build
# lives in target/fuzz, so a kept target/ dir makes the next build incremental.
# Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets it take cargo-fuzz's
# nightly-only flags. Exits non-zero on the first crash, naming the input that made it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz ..."
  cargo install --quiet --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
root="$PWD"
out="$root/target/fuzz"
# No sanitizer: our code forbids `unsafe`, and what we look for is panics (debug
# assertions and overflow checks are on) and runaway memory or time.
flags=(--release --sanitizer none --debug-assertions --target-dir "$out/build")
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi
echo "fuzz: building ${#targets[@]} targets ..."
(cd fuzz && cargo fuzz build "${flags[@]}")
oom=0
for t in "${targets[@]}"; do
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
  echo "fuzz: $t for ${seconds}s"
  log="$out/$t.log"
  if ! (cd fuzz && cargo fuzz run "${flags[@]}" "$t" "$out/corpus/$t" "corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$out/artifacts/$t/") >"$log" 2>&1; then
    if grep -q "libFuzzer: out-of-memory" "$log"; then
      # Reported loudly with its input, not a failure of the run (README "Fuzzing").
      echo "fuzz: WARNING: $t ran out of memory (over 2 GiB); the input is in $out/artifacts/$t/" >&2
      oom=$((oom + 1))
      continue
    fi
    tail -n 40 "$log"
    echo "fuzz: $t FAILED; the input is in $out/artifacts/$t/ (full log: $log)" >&2
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)|cov: ' "$log" | tail -n 4
done
echo "fuzz: no crash in ${#targets[@]} targets x ${seconds}s (${oom} out of memory)"
