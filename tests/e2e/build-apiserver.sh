#!/usr/bin/env bash
# Builds the real kube-apiserver for the end-to-end tests (tests/e2e/), once per version,
# and installs what the tests start beside it (etcd, openssl) from Debian's packages.
#
# The binary is cached outside the work tree, keyed by the version the module of
# tests/e2e/apiserver/ requires:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/kubernetai/kube-apiserver-vX.Y.Z
# and reused when present. Prints that path on its last line. Needs Go (go.mod's version or
# newer) and the Go module proxy. The first time: 8 to 11 minutes of CPU (7 minutes on two quiet
# cores, 15 on a busy machine), a 100 MB binary, 2 GB of Go build cache, 140 MB of modules.
#
#   tests/e2e/build-apiserver.sh            # build (or reuse), install etcd if missing
#   KUBERNETAI_E2E_APISERVER=$(tests/e2e/build-apiserver.sh | tail -n 1)
#
# Another release: in tests/e2e/apiserver/go.mod, the k8s.io/kubernetes version (v1.Y.Z) and
# every replace (v0.Y.Z, the staging modules of its go.mod), then `go mod tidy` there.
set -euo pipefail
module="$(cd "$(dirname "$0")/apiserver" && pwd)"
version=$(sed -nE 's/^(require)?[[:space:]]*k8s\.io\/kubernetes (v[0-9.]+).*/\2/p' "$module/go.mod")
if [ -z "$version" ]; then
  echo "build-apiserver: no k8s.io/kubernetes version in $module/go.mod" >&2
  exit 1
fi
# Go needs a HOME; without one, the one Python finds too (the password database's).
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/kubernetai"
binary="$cache/kube-apiserver-$version"

if ! command -v etcd >/dev/null || ! command -v openssl >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "build-apiserver: etcd and openssl are needed: apt-get install etcd-server openssl" >&2
    exit 1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server openssl >/dev/null
fi

if [ ! -x "$binary" ]; then
  command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"
  mkdir -p "$cache"
  echo "build-apiserver: building kube-apiserver $version into $binary" >&2
  minor=$(echo "$version" | cut -d. -f2)
  stamp="-X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1"
  stamp="$stamp -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  (cd "$module" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" \
    go build -trimpath -ldflags "-s -w $stamp" -o "$binary.partial" k8s.io/kubernetes/cmd/kube-apiserver)
  mv "$binary.partial" "$binary"
fi
echo "$binary"
