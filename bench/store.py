"""A minimal Swift API client for the harness itself: auth, listings, bucket clean-up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import requests

PAGE = 10000
BULK = 1000  # names per bulk-delete request (RGW takes fewer than Swift's 10000)


class Store:
    def __init__(self, auth_url: str, user: str, key: str) -> None:
        self.auth_url, self.user, self.key = auth_url, user, key
        self.session = requests.Session()
        self._token: tuple[str, str] | None = None

    def auth(self) -> tuple[str, str]:
        """(token, storage URL), fetched once."""
        if self._token is None:
            r = self.session.get(
                self.auth_url,
                headers={"X-Auth-User": self.user, "X-Auth-Key": self.key},
                timeout=30,
            )
            r.raise_for_status()
            self._token = (r.headers["X-Auth-Token"], r.headers["X-Storage-Url"])
        return self._token

    def _req(self, method: str, path: str, **kw: object) -> requests.Response:
        token, url = self.auth()
        headers = {"X-Auth-Token": token, **kw.pop("headers", {})}  # type: ignore[dict-item]
        return self.session.request(method, f"{url}{path}", headers=headers, timeout=120, **kw)  # type: ignore[arg-type]

    def pages(self, container: str, prefix: str = "") -> Iterator[list[dict[str, object]]]:
        """Paged JSON listing, until an empty page (RGW may cap the page below PAGE)."""
        marker = ""
        while True:
            r = self._req(
                "GET",
                f"/{quote(container)}",
                params={"format": "json", "limit": PAGE, "marker": marker, "prefix": prefix},
            )
            if r.status_code == 404:
                return
            r.raise_for_status()
            page = r.json()
            if not page:
                return
            yield page
            marker = str(page[-1]["name"])

    def names(self, container: str) -> list[str]:
        return [str(o["name"]) for page in self.pages(container) for o in page]

    def count(self, container: str) -> int:
        """Objects in the container per a single listing page (cheap; exact below PAGE)."""
        r = self._req("GET", f"/{quote(container)}", params={"format": "json", "limit": PAGE})
        return len(r.json()) if r.status_code == 200 else 0

    def object_count(self, container: str) -> int:
        r = self._req("HEAD", f"/{quote(container)}")
        return int(r.headers.get("X-Container-Object-Count", -1)) if r.ok else -1

    def put(self, container: str, name: str, data: bytes = b"") -> None:
        self._req("PUT", f"/{quote(container)}/{quote(name)}", data=data).raise_for_status()

    def create(self, container: str) -> None:
        self._req("PUT", f"/{quote(container)}").raise_for_status()

    def drop(self, container: str) -> None:
        """Delete every object, then the container; missing is fine."""
        names = self.names(container)
        batches = [names[i : i + BULK] for i in range(0, len(names), BULK)]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda b: self._bulk_delete(container, b), batches))
        for _ in range(20):
            r = self._req("DELETE", f"/{quote(container)}")
            if r.status_code in (204, 404):
                return
            time.sleep(0.5)  # 409: the listing still lags the deletes

    def _bulk_delete(self, container: str, names: list[str]) -> None:
        token, url = self.auth()
        body = "\n".join(quote(f"/{container}/{n}") for n in names)
        # A plain request per batch: batches run in threads, a Session is not thread-safe.
        r = requests.post(
            url,
            params={"bulk-delete": ""},
            data=body.encode(),
            headers={
                "X-Auth-Token": token,
                "Content-Type": "text/plain",
                "Accept": "application/json",
            },
            timeout=600,
        )
        r.raise_for_status()
