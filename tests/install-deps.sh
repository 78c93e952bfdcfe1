#!/usr/bin/env bash
# Everything the test suite needs on a fresh Debian machine: the Ceph RGW packages, rclone
# (an interop and benchmark peer), and kcsync with its test extra (Swift server, Keystone and
# keystonemiddleware, python-swiftclient) and bench extra (matplotlib, for the harness smoke
# test). Keystone's dependencies are pinned by tests/constraints.txt (wheels only, nothing
# compiles; about 30 s and 225 MB on top of the rest).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PACKAGES=(radosgw ceph-mon ceph-osd ceph-common rclone systemd)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
python3 -m pip install -q --disable-pip-version-check -c tests/constraints.txt -e '.[test,bench]'
