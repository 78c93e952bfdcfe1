"""What the delete guard remembers between runs: each folder's device at the last
successful run, the deletes it refused, and the deletes an operator approved."""

from __future__ import annotations

import json
from typing import Any

from kcsync.store.db import Database

_REFUSED = "guard:refused"


def _device_key(folder: str) -> str:
    return f"guard:device:{folder}"


def _approved_key(folder: str) -> str:
    return f"guard:approved:{folder}"


class GuardState:
    def __init__(self, db: Database) -> None:
        self._db = db

    def device(self, folder: str) -> int | None:
        value = self._db.get_meta(_device_key(folder))
        return None if value is None else int(value)

    def record_device(self, folder: str, device: int) -> None:
        self._db.set_meta(_device_key(folder), str(device))

    def approved(self, folder: str) -> int | None:
        value = self._db.get_meta(_approved_key(folder))
        return None if value is None else int(value)

    def approve(self, folder: str, count: int, device: int | None) -> None:
        """The operator looked and agreed: the next run may delete up to ``count`` objects
        in ``folder``, and the folder's present disk is the one to trust from now on."""
        self._db.set_meta(_approved_key(folder), str(count))
        if device is not None:
            self.record_device(folder, device)

    def used_approval(self, folder: str) -> None:
        self._db.delete_meta(_approved_key(folder))

    def refusals(self) -> dict[str, dict[str, Any]]:
        value = self._db.get_meta(_REFUSED)
        return {} if value is None else dict(json.loads(value))

    def refuse(self, folder: str, count: int, why: str, at: float) -> None:
        refused = self.refusals()
        refused[folder] = {"count": count, "why": why, "at": at}
        self._db.set_meta(_REFUSED, json.dumps(refused))

    def clear(self, folder: str) -> None:
        refused = self.refusals()
        if refused.pop(folder, None) is not None:
            self._db.set_meta(_REFUSED, json.dumps(refused))
