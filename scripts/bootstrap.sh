# Sourced by the other scripts: make .venv with the package and, unless
# SELF_ENCRYPTION_EXTRAS says otherwise, its test extras (the demo asks for none).
# Installs libcrypto's headers, pkg-config, valgrind, strace (the fault and durability tests
# trace the command with it), faketime (the S3 lock tests run a machine whose clock is off)
# and FUSE 3 (for mount) with apt-get when they are missing and we are root on a Debian-like
# system; otherwise says what is missing.
set -euo pipefail

PYTHON=${PYTHON:-python3}

need_packages=()
pkg-config --exists libcrypto 2>/dev/null || need_packages+=(libssl-dev pkg-config)
command -v cc >/dev/null 2>&1 || need_packages+=(gcc)
command -v valgrind >/dev/null 2>&1 || need_packages+=(valgrind)
command -v strace >/dev/null 2>&1 || need_packages+=(strace)
command -v faketime >/dev/null 2>&1 || need_packages+=(faketime)
# self-encryption mount: fusermount3 and libfuse3.so.3, which the mfusepy binding loads.
command -v fusermount3 >/dev/null 2>&1 || need_packages+=(fuse3)
if [ ${#need_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing ${need_packages[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}" >/dev/null
  else
    echo "bootstrap: missing ${need_packages[*]}; install them (see README)" >&2
  fi
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
  echo "bootstrap: Python 3.10 or newer is needed ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
  exit 1
}
extras=${SELF_ENCRYPTION_EXTRAS-test}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: making .venv and building the C core (the first time takes a minute)" >&2
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}"
# An editable install leaves the package's bytecode unwritten (pip writes it for a wheel), and
# where PYTHONDONTWRITEBYTECODE is set it never is: every command would then compile the
# package again, some 60 ms a start. An edited file is still read from its source (its
# bytecode is stale by its time stamp).
.venv/bin/python -m compileall -q self_encryption >/dev/null
