#!/usr/bin/env bash
# Install kcsync to run as a systemd service, the one supported way (run as root from the
# repository; run again to upgrade):
#   - an isolated venv in /opt/kcsync (readable by the service user, unlike an editable
#     install under /root), its command linked to /usr/local/bin/kcsync, where the units
#     expect it;
#   - the system user kcsync, /etc/kcsync (root:kcsync 0750) and both units in
#     /etc/systemd/system. Configs and credentials are left as they are.
# KCSYNC_ROOT=DIR stages the same files below DIR instead of / (packaging, the tests): no
# user is created and nothing is owned by it.
set -euo pipefail
cd "$(dirname "$0")/.."
root="${KCSYNC_ROOT:-}"
venv=/opt/kcsync

bash scripts/venv.sh "$root$venv" --upgrade .
install -d "$root/usr/local/bin" "$root/etc/systemd/system"
# Relative, so the link also holds below KCSYNC_ROOT.
ln -sfn "../../..$venv/bin/kcsync" "$root/usr/local/bin/kcsync"
install -m 0644 systemd/kcsync.service systemd/kcsync@.service "$root/etc/systemd/system/"
if [ -z "$root" ]; then
  id kcsync >/dev/null 2>&1 ||
    useradd --system --home-dir /var/lib/kcsync --no-create-home --shell /usr/sbin/nologin kcsync
  install -d -m 0750 -o root -g kcsync /etc/kcsync
  systemctl daemon-reload 2>/dev/null || true
else
  install -d -m 0750 "$root/etc/kcsync"
fi
echo "kcsync $("$root$venv/bin/kcsync" --version | cut -d' ' -f2) installed in $venv," \
  "linked to /usr/local/bin/kcsync"
