#!/usr/bin/env bash
# Make a Python virtual environment at DIR (if missing) and pip-install into it:
#   bash scripts/venv.sh DIR PIP-INSTALL-ARGUMENTS...
# Debian's own python3 refuses `pip install` outside a venv (PEP 668, "externally managed"),
# and a fresh Debian lacks the venv module's pip (package python3-venv): installed here.
set -euo pipefail
dir="$1"
shift
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv
fi
[ -x "$dir/bin/python" ] || python3 -m venv "$dir"
"$dir/bin/python" -m pip install -q --disable-pip-version-check "$@"
