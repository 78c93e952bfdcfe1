"""systemd's notify protocol (sd_notify): READY, STATUS, WATCHDOG, STOPPING.

A few lines of datagram socket code instead of a dependency: the protocol is one
``KEY=VALUE`` datagram to the socket named in $NOTIFY_SOCKET.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from contextlib import suppress


class Notifier:
    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        address = environ.get("NOTIFY_SOCKET", "")
        # "@name" is a socket in the abstract namespace, written with a leading NUL.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = environ.get("WATCHDOG_USEC", "")
        self.watchdog_interval = int(usec) / 1e6 / 2 if usec.isdigit() and int(usec) else None

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, **fields: str) -> None:
        if not self._address:
            return
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        # OSError: systemd went away (or never was there): nothing to tell.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, suppress(OSError):
            # Never wait: the main loop sends these, and a supervisor that stops reading
            # (a full queue of 10 datagrams by default) blocked it in sendto, where a SIGTERM
            # set the stop flag that the loop then never got to check. A dropped STATUS or
            # WATCHDOG ping is harmless; a daemon that cannot stop is not.
            sock.setblocking(False)
            sock.sendto(message.encode("utf-8"), self._address)

    def ready(self, status: str) -> None:
        self.send(ready="1", status=status)

    def status(self, status: str) -> None:
        self.send(status=status)

    def watchdog(self) -> None:
        self.send(watchdog="1")

    def stopping(self) -> None:
        self.send(stopping="1", status="stopping")
