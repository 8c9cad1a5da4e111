"""Where the CRI API's Python modules come from: compiled at build time, never committed.

The `cri` runtime speaks k8s.io/cri-api `runtime.v1alpha2` (what containerd 1.6 and CRI-O serve and the
kubelet of Kubernetes 1.20 speaks). Its `api.proto` is taken from Debian's `kubernetes` source package
and compiled with grpcio-tools by `tools/cri/build.sh` into a cache outside the work tree (`make test`
runs `python -m services.runtime.cri_api build`); `load()` imports the generated modules from there.
Where they are not built, `unavailable()` says why, the `cri` runtime refuses to open with that reason
and its tests skip with it.

    python -m services.runtime.cri_api build    # fetch + compile (a no-op once built)
    python -m services.runtime.cri_api status   # where the cache is and whether it is usable
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from services.errors import RuntimeUnavailable

VERSION = "1.20.2"  # the cri-api of Debian's kubernetes source package
ENV_DIR = "KRUISEBUS_CRI_API_DIR"
BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "cri" / "build.sh"
PACKAGE = "kruisebus_cri.v1alpha2"


def cache_dir() -> Path:
    """$KRUISEBUS_CRI_API_DIR, else /var/cache/kruisebus (root) or ~/.cache/kruisebus, per API version."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR])
    if os.geteuid() == 0:
        return Path("/var/cache/kruisebus") / f"cri-api-{VERSION}"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "kruisebus" / f"cri-api-{VERSION}"


def unavailable() -> str | None:
    """Why the generated CRI modules cannot be loaded (None: they can)."""
    d = cache_dir()
    if (d / ".built").is_file() and (d / "py" / "kruisebus_cri" / "v1alpha2" / "api_pb2_grpc.py").is_file():
        try:
            load()
        except Exception as e:  # a protobuf/grpcio that does not fit the generated code
            return f"the CRI API modules in {d / 'py'} do not import: {type(e).__name__}: {e}"
        return None
    why = (d / "unavailable").read_text().strip() if (d / "unavailable").is_file() else ""
    return (
        f"the CRI API is not compiled in {d}"
        + (f": {why}" if why else "")
        + f"; build it with `{sys.executable} -m services.runtime.cri_api build` (make test does)"
    )


def load() -> tuple[ModuleType, ModuleType]:
    """(api_pb2, api_pb2_grpc) of runtime.v1alpha2; raises RuntimeUnavailable when not built."""
    py = str(cache_dir() / "py")
    if not (Path(py) / "kruisebus_cri").is_dir():
        raise RuntimeUnavailable(
            f"the CRI API is not compiled in {cache_dir()}; run "
            f"`{sys.executable} -m services.runtime.cri_api build`"
        )
    if py not in sys.path:
        sys.path.append(py)
    return importlib.import_module(f"{PACKAGE}.api_pb2"), importlib.import_module(f"{PACKAGE}.api_pb2_grpc")


def build() -> int:
    """Run the build script with this interpreter (its grpcio-tools, its protobuf)."""
    if not BUILD_SCRIPT.is_file():
        print(f"cri-api: {BUILD_SCRIPT} is missing (building needs the source tree)", file=sys.stderr)
        return 1
    return subprocess.call(["bash", str(BUILD_SCRIPT), str(cache_dir()), sys.executable])


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["build"]:
        return build()
    if args == ["status"]:
        why = unavailable()
        print(why or f"the CRI API ({PACKAGE}) is compiled in {cache_dir() / 'py'}")
        return 1 if why else 0
    print("usage: python -m services.runtime.cri_api build|status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
