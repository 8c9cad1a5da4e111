#!/usr/bin/env bash
# Build a real Kubernetes control plane for the `[real]` tests from Debian packages alone:
# kube-apiserver, kube-controller-manager and kube-scheduler from Debian's `kubernetes` source package
# (1.20.5+really1.20.2) compiled with Debian's Go, plus Debian's `etcd-server`.
#
# Usage: tools/realkube/build.sh DIR     (make test calls it through `python -m tests.realkube build`)
#
# DIR/bin/ receives the three binaries; DIR/.built is the stamp that makes a second run a no-op. The
# source, the Go build cache and the log live in DIR too (outside the work tree: nothing here is ever
# committed). On failure the reason is written to DIR/unavailable and the exit status is non-zero; the
# tests then skip their `[real]` variants with that reason.
set -euo pipefail

DIR=${1:?usage: build.sh DIR}
UPSTREAM=1.20.2                     # what kube-apiserver reports (Debian: 1.20.5+really1.20.2)
SRC_PKG=kubernetes
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
STAMP=$DIR/.built
LOG=$DIR/build.log

if [ -f "$STAMP" ] && [ -x "$DIR/bin/kube-apiserver" ] && [ -x "$DIR/bin/kube-controller-manager" ] \
   && [ -x "$DIR/bin/kube-scheduler" ] && command -v etcd >/dev/null; then
  exit 0
fi

fail() {
  echo "$*" > "$DIR/unavailable"
  echo "realkube: $*" >&2
  exit 1
}

apt_get() {
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo DEBIAN_FRONTEND=noninteractive apt-get "$@"
  else
    fail "building the real control plane needs apt-get as root (run tools/realkube/build.sh $DIR as root once)"
  fi
}

command -v apt-get >/dev/null || fail "no apt-get: the real control plane is built from Debian packages"
echo "realkube: building kube-apiserver, kube-controller-manager, kube-scheduler $UPSTREAM into $DIR (about 5 minutes on 2 cores; once)" >&2
rm -f "$DIR/unavailable"
: > "$LOG"

# 1. deb-src entries (tools/debsrc.sh, shared with tools/cri/build.sh): `apt-get source` needs them.
# shellcheck source=../debsrc.sh
. "$(dirname "$0")/../debsrc.sh"
ensure_deb_src || true
apt_get update -qq >>"$LOG" 2>&1 || fail "apt-get update failed (see $LOG)"

# 2. Go, etcd, the fixed reflect2, dpkg-source. The vendored github.com/modern-go/reflect2 1.0.1 of
# Kubernetes 1.20 segfaults under Go >= 1.18 (json-iterator's map encoding in the apiserver); Debian's
# golang-github-modern-go-reflect2-dev (1.0.2) replaces it below.
apt_get install -y -qq golang-go etcd-server golang-github-modern-go-reflect2-dev dpkg-dev openssl make rsync jq \
  >>"$LOG" 2>&1 \
  || fail "apt-get install of golang-go etcd-server golang-github-modern-go-reflect2-dev failed (see $LOG)"

# 3. The source package, unpacked with Debian's patches.
SRC=$DIR/src
rm -rf "$SRC" && mkdir -p "$SRC"
(cd "$SRC" && apt-get source -qq "$SRC_PKG" >>"$LOG" 2>&1) || fail "apt-get source $SRC_PKG failed (see $LOG)"
TREE=$(find "$SRC" -maxdepth 1 -mindepth 1 -type d -name "$SRC_PKG-*" | head -n1)
[ -n "$TREE" ] || fail "apt-get source $SRC_PKG unpacked nothing (see $LOG)"
case "$TREE" in *"$UPSTREAM"*) ;; *) fail "unexpected $SRC_PKG source $(basename "$TREE"), want $UPSTREAM" ;; esac

REFLECT2=/usr/share/gocode/src/github.com/modern-go/reflect2
rm -rf "$TREE/vendor/github.com/modern-go/reflect2"
cp -r "$REFLECT2" "$TREE/vendor/github.com/modern-go/reflect2"
rm -f "$TREE/vendor/github.com/modern-go/reflect2/go.mod"

# 4. Build in GOPATH mode, as Kubernetes 1.20's own hack/ scripts do (vendor/k8s.io are symlinks into
# staging/; module mode would want `go mod tidy` and the network).
GOPATH=$DIR/gopath
mkdir -p "$GOPATH/src/k8s.io" "$DIR/bin"
ln -sfn "$TREE" "$GOPATH/src/k8s.io/kubernetes"
LDFLAGS="-s -w"
# GOPATH mode: the vendored packages' import paths start with k8s.io/kubernetes/vendor/
for pkg in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
  LDFLAGS="$LDFLAGS -X $pkg.gitVersion=v$UPSTREAM -X $pkg.gitMajor=1 -X $pkg.gitMinor=20 -X $pkg.gitTreeState=clean"
done
start=$(date +%s)
(
  cd "$GOPATH/src/k8s.io/kubernetes"
  export GOCACHE=$DIR/gocache GOFLAGS=
  # the apiserver's OpenAPI definitions are generated at build time (not in the source package)
  nice -n 10 make gen_openapi
  export GOPATH GO111MODULE=off CGO_ENABLED=0
  nice -n 10 go build -o "$DIR/bin/" -ldflags "$LDFLAGS" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler
) >>"$LOG" 2>&1 || fail "go build of the control plane failed (see $LOG)"
echo "realkube: built in $(( $(date +%s) - start )) s" >&2

# 5. Keep only the binaries: the source tree and build cache are ~2 GB.
rm -rf "$SRC" "$GOPATH" "$DIR/gocache"
"$DIR/bin/kube-apiserver" --version 2>&1 | tee -a "$LOG" | grep -q "v$UPSTREAM" \
  || fail "the built kube-apiserver does not run or does not say v$UPSTREAM (see $LOG)"
echo "$SRC_PKG $UPSTREAM $(go version | cut -d' ' -f3)" > "$STAMP"
