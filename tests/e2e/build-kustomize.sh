#!/usr/bin/env bash
# Builds kustomize for the manifest tests (tests/e2e/test_deploy.py), once per version.
#
# The binary is cached outside the work tree, keyed by the version the module of
# tests/e2e/kustomize/ requires:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/kubernetai/kustomize-vX.Y.Z
# and reused when present. Prints that path on its last line. Needs Go (go.mod's version or
# newer) and the Go module proxy; under a minute of two cores the first time.
#
#   KUBERNETAI_KUSTOMIZE=$(tests/e2e/build-kustomize.sh | tail -n 1)
set -euo pipefail
module="$(cd "$(dirname "$0")/kustomize" && pwd)"
version=$(sed -nE 's/^(require)?[[:space:]]*sigs\.k8s\.io\/kustomize\/kustomize\/v5 (v[0-9.]+).*/\2/p' "$module/go.mod")
if [ -z "$version" ]; then
  echo "build-kustomize: no sigs.k8s.io/kustomize/kustomize/v5 version in $module/go.mod" >&2
  exit 1
fi
cache="${XDG_CACHE_HOME:-$HOME/.cache}/kubernetai"
binary="$cache/kustomize-$version"

if [ ! -x "$binary" ]; then
  command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"
  mkdir -p "$cache"
  echo "build-kustomize: building kustomize $version into $binary" >&2
  (cd "$module" && CGO_ENABLED=0 GOFLAGS=-mod=readonly \
    go build -trimpath -ldflags "-s -w" -o "$binary.partial" sigs.k8s.io/kustomize/kustomize/v5)
  mv "$binary.partial" "$binary"
fi
echo "$binary"
