#!/usr/bin/env bash
# Everything the test suite needs on a fresh Debian machine: the Ceph RGW packages, rclone
# (an interop and benchmark peer), and, in the venv .venv (Debian's python3 refuses a
# system-wide pip install, PEP 668), kcsync with its test extra (Swift server, Keystone and
# keystonemiddleware, python-swiftclient, ruff, mypy) and bench extra (matplotlib, for the
# harness smoke test). Keystone's dependencies are pinned by tests/constraints.txt (wheels
# only, nothing compiles). Then: .venv/bin/python -m pytest -q
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PACKAGES=(radosgw ceph-mon ceph-osd ceph-common rclone systemd python3-venv)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
bash scripts/venv.sh .venv -c tests/constraints.txt -e '.[test,bench]'
