#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 60), starting from the
# committed seeds in fuzz/corpus/TARGET. New inputs go to a temporary copy of
# the corpus (kept with --keep DIR); a crash or a leak past the memory bound
# stops the run with the failing input saved under fuzz-artifacts/.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET ...]     targets: datamap decrypt se_core
#
# The Python targets use atheris; the C target needs clang with libFuzzer
# (installed with apt-get when missing and we are root on Debian or Ubuntu).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(datamap decrypt se_core)
# Peak memory a Python target may reach: the interpreter and its imports (about
# 50 MB) plus the 64 MiB a hostile input may cost at the most. The C target runs
# under AddressSanitizer, whose quarantine alone passes that: it gets libFuzzer's
# default 2 GB, which still catches a runaway allocation.
rss_limit_mb=${SELF_ENCRYPTION_FUZZ_RSS_MB:-128}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p fuzz-artifacts

.venv/bin/python -c 'import atheris' 2>/dev/null || .venv/bin/python -m pip install --quiet atheris

run() {  # TARGET RSS_LIMIT_MB COMMAND...
  local target=$1 limit=$2; shift 2
  mkdir -p "$work/$target"
  cp fuzz/corpus/"$target"/* "$work/$target"/ 2>/dev/null || true
  echo "== fuzz $target for ${seconds}s" >&2
  "$@" -max_total_time="$seconds" -rss_limit_mb="$limit" -timeout=20 \
       -artifact_prefix="fuzz-artifacts/$target-" -print_final_stats=1 "$work/$target" \
       2>"$work/$target.log" || { tail -40 "$work/$target.log" >&2; echo "fuzz: $target FAILED" >&2; return 1; }
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$work/$target.log" | sed "s/^/  $target /" >&2
}

status=0
for target in "${targets[@]}"; do
  case $target in
    datamap|decrypt)
      run "$target" "$rss_limit_mb" .venv/bin/python "fuzz/fuzz_$target.py" -max_len=4096 || status=1 ;;
    se_core)
      if ! command -v clang >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "fuzz: installing clang and its libFuzzer runtime" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
      fi
      if ! command -v clang >/dev/null 2>&1; then
        echo "fuzz: se_core skipped: clang with libFuzzer is not installed" >&2
        continue
      fi
      clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -Icsrc fuzz/fuzz_se_core.c csrc/se_core.c $(pkg-config --cflags --libs libcrypto) \
        -o "$work/fuzz_se_core"
      run se_core 2048 "$work/fuzz_se_core" -max_len=70000 || status=1 ;;
    *) echo "fuzz: unknown target $target (datamap, decrypt, se_core)" >&2; status=2 ;;
  esac
done
exit $status
