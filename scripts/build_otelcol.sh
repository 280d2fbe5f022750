#!/usr/bin/env bash
# Builds the OpenTelemetry Collector of the gateway tier (deploy/otelcol/builder-config.yaml)
# with the OpenTelemetry Collector Builder, only when missing or when the manifest changed.
# Result: ${MLTRACE_CACHE:-$HOME/.cache/otel-mltrace}/bin/otelcol-mltrace (outside the repo).
# On failure it writes the reason to bin/otelcol-mltrace.failed (tests skip with it) and
# exits non-zero; bootstrap goes on. Cold build (empty Go caches): ~5-10 min on 2 cores.
set -uo pipefail
cd "$(dirname "$0")/.."
manifest=deploy/otelcol/builder-config.yaml
cache="${MLTRACE_CACHE:-$HOME/.cache/otel-mltrace}"
bin="$cache/bin/otelcol-mltrace"
failed="$bin.failed"
stamp="$bin.manifest-sha256"
log="$cache/otelcol-build.log"
want=$(sha256sum "$manifest" | cut -d' ' -f1)
if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
mkdir -p "$cache/bin"
fail() {
  echo "$1" >"$failed"
  echo "bootstrap: otelcol build failed: $1 (scale-out tests will skip; log: $log)" >&2
  exit 1
}
go=$(command -v go || true)
[ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
[ -n "$go" ] || fail "no Go toolchain (go on PATH or /usr/local/go/bin/go)"
export PATH="$(dirname "$go"):$PATH"
# the builder's version is the core components' version in the manifest
ver=$(sed -n 's#.*collector/receiver/otlpreceiver \(v[0-9][0-9.]*\).*#\1#p' "$manifest" | head -1)
[ -n "$ver" ] || fail "cannot read the otlpreceiver version from $manifest"
echo "bootstrap: building the OpenTelemetry Collector $ver (gateway tier) into $bin (log: $log)"
start=$(date +%s)
gobin="$cache/gotools/builder-$ver"
if [ ! -x "$gobin/builder" ]; then
  GOBIN="$gobin" timeout 1200 "$go" install "go.opentelemetry.io/collector/cmd/builder@$ver" \
    >"$log" 2>&1 || fail "go install go.opentelemetry.io/collector/cmd/builder@$ver failed: $(tail -n 3 "$log" | tr '\n' ' ')"
fi
work="$cache/otelcol-build"
mkdir -p "$work"
sed "s#^\([[:space:]]*output_path:\).*#\1 $work#" "$manifest" >"$cache/otelcol-build.yaml"
if ! timeout 2400 "$gobin/builder" --config "$cache/otelcol-build.yaml" --ldflags="-s -w" >>"$log" 2>&1; then
  fail "builder --config $manifest failed: $(grep -iE 'error|fail' "$log" | tail -n 3 | tr '\n' ' ')"
fi
[ -x "$work/otelcol-mltrace" ] || fail "builder finished but $work/otelcol-mltrace is missing"
cp "$work/otelcol-mltrace" "$bin.tmp" && mv "$bin.tmp" "$bin"
echo "$want" >"$stamp"
rm -f "$failed"
echo "bootstrap: otelcol-mltrace built in $(( $(date +%s) - start ))s: $("$bin" --version 2>&1 | head -1)"
