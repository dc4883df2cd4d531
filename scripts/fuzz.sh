#!/usr/bin/env bash
# Coverage-guided fuzzing of the connector's pure path with AFL++ (cargo-afl). See docs/fuzzing.md.
#
#   scripts/fuzz.sh [TARGET] [RUNS]      each target (or TARGET) for RUNS inputs (default 1000000)
#   scripts/fuzz.sh --ci [TARGET]        each target for FUZZ_CI_SECONDS (default 45) from the
#                                        checked-in corpus; exits 1 on any crash (CI)
#   scripts/fuzz.sh --repro TARGET FILE...   runs saved inputs through TARGET outside afl-fuzz,
#                                        printing the panic and its backtrace
#
# Targets: prepare, json_depth. On first use it installs cargo-afl and builds AFL++ from the
# sources cargo-afl ships (a few minutes, once per toolchain; both cached under ~/.cargo and
# ~/.local/share/afl.rs), then builds the targets into fuzz/target/<host triple>/release. Findings
# go to fuzz/out/<target>/default/{crashes,hangs,queue}; each run starts that folder afresh.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_AFL_VERSION=0.18.2 # keep equal to the `afl` dependency in fuzz/Cargo.toml
ALL_TARGETS=(prepare json_depth)
CI_SECONDS=${FUZZ_CI_SECONDS:-45}

mode=runs
case "${1:-}" in
  --ci) mode=ci; shift ;;
  --repro) mode=repro; shift ;;
  -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

say() { printf 'fuzz: %s\n' "$*" >&2; }
known_target() {
  local t
  for t in "${ALL_TARGETS[@]}"; do [[ $t == "$1" ]] && return 0; done
  say "unknown target '$1' (targets: ${ALL_TARGETS[*]})"
  exit 2
}

if [[ $mode == repro ]]; then
  [[ $# -ge 2 ]] || { say "usage: scripts/fuzz.sh --repro TARGET FILE..."; exit 2; }
  target=$1; shift
  known_target "$target"
else
  targets=("${ALL_TARGETS[@]}")
  if [[ $# -ge 1 ]]; then
    known_target "$1"
    targets=("$1")
  fi
  runs=${2:-1000000}
  [[ $runs =~ ^[1-9][0-9]*$ ]] || { say "RUNS must be a positive number, not '$runs'"; exit 2; }
fi

# --- tools: cargo-afl, then AFL++ built by it (both idempotent) -------------------------------
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_BIN:$PATH"
installed=$(cargo afl --version 2>/dev/null || true)
if [[ $installed != "cargo-afl $CARGO_AFL_VERSION "* ]]; then
  say "installing cargo-afl $CARGO_AFL_VERSION (about two minutes, once)"
  cargo install cargo-afl --version "$CARGO_AFL_VERSION" --locked --force >&2
fi
# `afl-fuzz -h` answers once AFL++ is built for this toolchain; otherwise cargo-afl says it is not.
afl_help=$(cargo afl fuzz -h 2>&1 || true)
if [[ $afl_help != *afl-fuzz* ]]; then
  say "building AFL++ from cargo-afl's bundled sources (a few minutes, once per toolchain)"
  cargo afl config --build >&2
fi

# --- the targets -------------------------------------------------------------------------------
# --target (the host's own triple): cargo-afl's RUSTFLAGS (instrumentation, opt-level 3, one
# codegen unit) then reach only the crates of the targets, not the build scripts and proc macros,
# which build as the release profile's build-override says. scripts/fuzz-rustc.sh leaves the
# instrumentation out of the crates the targets never run (HTTP, TLS, telemetry, the CLI); Kafka
# and the cloud SDK are not built at all (fuzz/Cargo.toml leaves out the library's feature kafka).
# Figures: docs/testing.md#where-the-time-goes.
host=$(rustc -vV | sed -n 's/^host: //p')
BIN=fuzz/target/$host/release
say "building the fuzz targets ($BIN)"
RUSTC_WRAPPER="$PWD/scripts/fuzz-rustc.sh" \
  cargo afl build --release --locked --target "$host" --manifest-path fuzz/Cargo.toml >&2

if [[ $mode == repro ]]; then
  status=0
  for file in "$@"; do
    say "$target < $file"
    if RUST_BACKTRACE=1 "$BIN/$target" < "$file"; then
      say "no crash"
    else
      status=1
    fi
  done
  exit $status
fi

# Headless and unprivileged: no UI, no CPU pinning or governor checks (the machine is shared),
# no core_pattern change; calibrate quickly.
export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_FAST_CAL=1
export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SUPPRESS_ERROR_NO_UI=1

afl_stat() { sed -n "s/^$1 *: *//p" "$2"; }
found=0
for target in "${targets[@]}"; do
  out="fuzz/out/$target"
  rm -rf "$out"
  mkdir -p "$out"
  args=(-i "fuzz/corpus/$target" -o "$out" -x fuzz/dict/riskos.dict -t 2000)
  if [[ $mode == ci ]]; then
    # afl-fuzz skips a seed that crashes with a warning; replaying them here makes it a failure.
    say "$target: replaying fuzz/corpus/$target"
    for file in "fuzz/corpus/$target"/*; do
      "$BIN/$target" < "$file" > /dev/null 2>&1 || {
        RUST_BACKTRACE=1 "$BIN/$target" < "$file" || true
        say "$target: $file crashes (reproduce: scripts/fuzz.sh --repro $target $file)"
        exit 1
      }
    done
    say "$target: ${CI_SECONDS}s from fuzz/corpus/$target"
    # -V counts fuzzing time only; the hard limit also covers start-up and the seed dry run.
    timeout --kill-after=10 $((CI_SECONDS + 120)) \
      cargo afl fuzz "${args[@]}" -V "$CI_SECONDS" -- "$BIN/$target" > "$out/afl.log" 2>&1 \
      || { tail -40 "$out/afl.log"; say "$target: afl-fuzz failed (log: $out/afl.log)"; exit 1; }
  else
    say "$target: $runs inputs from fuzz/corpus/$target (log: $out/afl.log)"
    cargo afl fuzz "${args[@]}" -E "$runs" -- "$BIN/$target" > "$out/afl.log" 2>&1 \
      || { tail -40 "$out/afl.log"; say "$target: afl-fuzz failed (log: $out/afl.log)"; exit 1; }
  fi
  stats="$out/default/fuzzer_stats"
  [[ -f $stats ]] || { tail -40 "$out/afl.log"; say "$target: no $stats"; exit 1; }
  crashes=$(find "$out/default/crashes" -name 'id:*' 2>/dev/null | wc -l)
  hangs=$(find "$out/default/hangs" -name 'id:*' 2>/dev/null | wc -l)
  printf '%s: %s executions in %ss (%s/s), corpus %s, coverage %s, stability %s, crashes %s, hangs %s\n' \
    "$target" "$(afl_stat execs_done "$stats")" "$(afl_stat run_time "$stats")" \
    "$(afl_stat execs_per_sec "$stats")" "$(afl_stat corpus_count "$stats")" \
    "$(afl_stat bitmap_cvg "$stats")" "$(afl_stat stability "$stats")" "$crashes" "$hangs"
  if [[ $crashes -gt 0 ]]; then
    found=1
    say "$target: crashing inputs (reproduce: scripts/fuzz.sh --repro $target FILE):"
    # The files stay on the machine that ran; CI keeps only this log, so each input is printed
    # too (base64, first 4 KiB): `base64 -d > crash.bin`, then --repro.
    find "$out/default/crashes" -name 'id:*' | sort | while read -r file; do
      printf '%s\n' "$file" >&2
      head -c 4096 "$file" | base64 -w 0 >&2
      printf '\n' >&2
    done
  fi
  if [[ $hangs -gt 0 ]]; then
    say "$target: inputs over the 2 s timeout (check: time $BIN/$target < FILE):"
    find "$out/default/hangs" -name 'id:*' | sort >&2
  fi
done
exit $found
