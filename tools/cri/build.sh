#!/usr/bin/env bash
# The CRI API for the `cri` runtime (services/runtime/cri.py), from Debian packages alone: the
# k8s.io/cri-api `runtime.v1alpha2` api.proto out of Debian's `kubernetes` source package (1.20.2),
# its gogoproto options stripped, compiled with grpcio-tools into Python modules.
#
# Usage: tools/cri/build.sh DIR PYTHON   (make test calls it through `python -m services.runtime.cri_api build`)
#
# DIR/py/kruisebus_cri/v1alpha2/api_pb2{,_grpc}.py are the generated modules; DIR/.built is the stamp that
# makes a second run a no-op (it names the protobuf the code was generated for: a new pin rebuilds).
# Nothing here is ever committed: DIR is outside the work tree. On failure the reason is written to
# DIR/unavailable and the exit status is non-zero; the CRI tests then skip with that reason.
set -euo pipefail

DIR=${1:?usage: build.sh DIR PYTHON}
PYTHON=${2:?usage: build.sh DIR PYTHON}
SRC_PKG=kubernetes
PROTO_IN=staging/src/k8s.io/cri-api/pkg/apis/runtime/v1alpha2/api.proto
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
LOG=$DIR/build.log
STAMP=$DIR/.built
WANT="protobuf $("$PYTHON" -c 'import google.protobuf as p; print(p.__version__)' 2>/dev/null || echo none)"
OUT=$DIR/py/kruisebus_cri/v1alpha2

fail() {
  echo "$*" > "$DIR/unavailable"
  echo "cri-api: $*" >&2
  exit 1
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -f "$OUT/api_pb2_grpc.py" ]; then
  exit 0
fi
rm -f "$DIR/unavailable"
: > "$LOG"
"$PYTHON" -c 'import grpc_tools.protoc' 2>>"$LOG" || fail "grpcio-tools is not installed in $PYTHON"

# 1. The proto, once: kept in DIR/proto (the source package itself is removed after extraction).
RAW=$DIR/proto/api.proto
if [ ! -s "$RAW" ]; then
  apt_get() {
    if [ "$(id -u)" -eq 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo DEBIAN_FRONTEND=noninteractive apt-get "$@"
    else fail "fetching the CRI API needs apt-get as root (run tools/cri/build.sh $DIR $PYTHON as root once)"; fi
  }
  command -v apt-get >/dev/null || fail "no apt-get: the CRI API comes from Debian's $SRC_PKG source package"
  # deb-src entries (tools/debsrc.sh, shared with tools/realkube/build.sh)
  # shellcheck source=../debsrc.sh
  . "$(dirname "$0")/../debsrc.sh"
  if ensure_deb_src; then
    apt_get update -qq >>"$LOG" 2>&1 || fail "apt-get update failed (see $LOG)"
  fi
  SRC=$DIR/src
  rm -rf "$SRC" && mkdir -p "$SRC" "$DIR/proto"
  # only the original tarball is needed: one file is extracted from it, nothing is unpacked or built
  (cd "$SRC" && apt-get source --download-only -qq "$SRC_PKG" >>"$LOG" 2>&1) \
    || fail "apt-get source --download-only $SRC_PKG failed (see $LOG)"
  TARBALL=$(find "$SRC" -maxdepth 1 -name "${SRC_PKG}_*.orig.tar.*" | head -n1)
  [ -n "$TARBALL" ] || fail "apt-get source $SRC_PKG brought no .orig tarball (see $LOG)"
  tar -xaf "$TARBALL" -C "$SRC" --wildcards "*/$PROTO_IN" >>"$LOG" 2>&1 \
    || fail "$PROTO_IN is not in $(basename "$TARBALL") (see $LOG)"
  cp "$(find "$SRC" -path "*/$PROTO_IN" | head -n1)" "$RAW"
  rm -rf "$SRC"
fi

# 2. Strip the gogoproto import and options (Go code generation hints only), then compile.
GEN=$DIR/gen
rm -rf "$GEN" "$DIR/py" && mkdir -p "$GEN/kruisebus_cri/v1alpha2" "$OUT"
sed -E -e '/import "github.com\/gogo\/protobuf\/gogoproto\/gogo.proto";/d' \
       -e '/^option \(gogoproto\.[a-z_]+\) *= *[a-z]+;/d' \
       -e 's/ \[\(gogoproto\.[a-z_]+\) = [^]]*\]//g' \
       "$RAW" > "$GEN/kruisebus_cri/v1alpha2/api.proto"
if grep -q gogoproto "$GEN/kruisebus_cri/v1alpha2/api.proto"; then
  fail "gogoproto options left in api.proto after stripping (see $GEN)"
fi
"$PYTHON" -m grpc_tools.protoc -I "$GEN" --python_out="$DIR/py" --grpc_python_out="$DIR/py" \
  kruisebus_cri/v1alpha2/api.proto >>"$LOG" 2>&1 || fail "protoc failed on the CRI api.proto (see $LOG)"
touch "$DIR/py/kruisebus_cri/__init__.py" "$OUT/__init__.py"
echo "$WANT" > "$STAMP"
echo "cri-api: runtime.v1alpha2 compiled into $DIR/py ($WANT)" >&2
