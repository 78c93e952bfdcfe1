"""The README's first command: start a local Swift, mirror a sample folder with
`kcsync --once`, show that a rerun sends nothing, and stop the server.

Run from the repository root: python3 -m tests.servers.demo
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.servers.swift import running_swift

KCSYNC = str(Path(sys.executable).with_name("kcsync"))


def sample_folder(root: Path) -> Path:
    folder = root / "photos"
    for rel, size in (
        ("2026/summer/beach.jpg", 180_000),
        ("2026/summer/sunset.jpg", 240_000),
        ("2026/winter/snow.jpg", 90_000),
        ("notes/readme.txt", 300),
        ("video/trip.mp4", 24 * 1024 * 1024),  # above the demo's threshold: sent as an SLO
    ):
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
    (folder / "upload.part").write_bytes(b"half-written: excluded by default")
    return folder


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="kcsync-demo-") as tmp, running_swift() as swift:
        root = Path(tmp)
        folder = sample_folder(root)
        config = root / "kcsync.yaml"
        config.write_text(
            f"auth: {{method: v1, url: '{swift.auth_url}', user: '{swift.user}', "
            f"key: '{swift.key}'}}\n"
            "bucket: demo-photos\n"
            f"folders: [{{path: '{folder}', prefix: 'photos/'}}]\n"
            f"state_dir: '{root / 'state'}'\n"
            "large_objects: {threshold: 16MiB, segment_size: 8MiB}\n"
            "log: {format: console}\n"
        )
        config.chmod(0o600)
        print(f"local Swift at {swift.proxy_url}; mirroring {folder}\n", flush=True)
        for title in ("first run: uploads everything", "second run: nothing changed"):
            print(f"== kcsync --once ({title})", flush=True)
            # The kcsync installed beside this interpreter (the venv's), not whichever one
            # PATH finds first: another install there would run other code, or none at all.
            code = subprocess.call([KCSYNC, "-c", str(config), "--once"])
            if code != 0:
                return code
            print(flush=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
