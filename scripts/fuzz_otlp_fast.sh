#!/usr/bin/env bash
# Differential fuzzing of the C reader mltrace_collector.index.decode._otlp_fast under
# AddressSanitizer + UndefinedBehaviorSanitizer: builds the extension (all its _otlp_fast*.c
# units) with both into a temporary directory, then runs tests/otlp_fuzz.py (C path against
# the pure-Python path) for SECONDS.
#
#   bash scripts/fuzz_otlp_fast.sh [SECONDS=600] [SEED=1]
#
# Any memory error or undefined behaviour aborts with the sanitizer's report; a difference
# between the two paths fails with the input's bytes. Needs gcc (or CC) with libasan and
# libubsan, and .venv (scripts/bootstrap.sh). Results: docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
seed=${2:-1}
py=.venv/bin/python
cc=${CC:-gcc}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
suffix=$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
include=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
"$cc" -shared -fPIC -O1 -g -fno-omit-frame-pointer \
  -fsanitize=address,undefined -fno-sanitize-recover=undefined \
  -Wall -Wextra -Werror=implicit-function-declaration \
  -I"$include" collector/mltrace_collector/index/decode/_otlp_fast*.c -o "$out/_otlp_fast$suffix"
# Python itself is not instrumented: the ASan runtime must be loaded first. Python's own
# allocator (pymalloc) would hide heap overflows inside its arenas, hence PYTHONMALLOC;
# leak checking is off because the interpreter keeps objects alive until exit.
asan=$("$cc" -print-file-name=libasan.so)
export LD_PRELOAD=$asan PYTHONMALLOC=malloc
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
"$py" -m tests.otlp_fuzz --seconds "$seconds" --seed "$seed" --extension-dir "$out"
