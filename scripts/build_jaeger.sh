#!/usr/bin/env bash
# Builds Jaeger v2 (cmd/jaeger) for the forwarding tests, only when the binary is missing.
# Module tag v1.76.0 of github.com/jaegertracing/jaeger is Jaeger v2.13.0. Its go.mod has a
# replace directive, so `go install pkg@version` refuses it: download the module from the Go
# module proxy and `go build` inside it with this machine's Go (GOTOOLCHAIN=local).
# Result: ${MLTRACE_CACHE:-$HOME/.cache/otel-mltrace}/bin/jaeger-v1.76.0 (outside the repo),
# found by tests/servers/jaeger.py the same way. On failure the reason goes to
# bin/jaeger-v1.76.0.failed (tests skip with it) and the script exits non-zero.
# Cold build (empty Go caches): ~15 min on 2 cores.
set -uo pipefail
version=v1.76.0
cache="${MLTRACE_CACHE:-$HOME/.cache/otel-mltrace}"
bin="$cache/bin/jaeger-$version"
failed="$bin.failed"
log="$cache/jaeger-build.log"
[ -x "$bin" ] && exit 0
mkdir -p "$cache/bin"
fail() {
  echo "$1" >"$failed"
  echo "bootstrap: Jaeger build failed: $1 (Jaeger tests will skip; log: $log)" >&2
  exit 1
}
go=$(command -v go || true)
[ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
[ -n "$go" ] || fail "no Go toolchain (go on PATH or /usr/local/go/bin/go)"
echo "bootstrap: building Jaeger $version (v2.13) with $("$go" version | cut -d' ' -f3) into $bin (log: $log)"
start=$SECONDS
dir=$("$go" mod download -json "github.com/jaegertracing/jaeger@$version" 2>>"$log" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] || fail "go mod download github.com/jaegertracing/jaeger@$version failed (Go module proxy unreachable?)"
if ! (cd "$dir" && GOTOOLCHAIN=local GOFLAGS= "$go" build -trimpath -o "$bin.tmp" ./cmd/jaeger) >>"$log" 2>&1; then
  rm -f "$bin.tmp"
  fail "go build ./cmd/jaeger failed: $(tail -n 1 "$log")"
fi
mv "$bin.tmp" "$bin"
rm -f "$failed"
echo "bootstrap: Jaeger built in $((SECONDS - start))s"
