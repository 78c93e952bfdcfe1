"""Which answers are worth a retry, and how long to wait: the whole policy in one place."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

# Status codes that say "try the same request again shortly":
#   408 the server timed out waiting for our body (slow link, big segment)
#   429 rate limited; Retry-After says for how long
#   498 Swift's ratelimit middleware
#   500/502/503/504 a proxy or backend hiccup (RGW answers 503 "SlowDown" under load)
# Everything else is final for this request: 4xx mean the request itself is wrong.
RETRY_STATUSES = frozenset({408, 429, 498, 500, 502, 503, 504})
RETRY_AFTER_CAP = 60.0


@dataclass(frozen=True)
class Backoff:
    base: float = 0.5
    cap: float = 20.0

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Full jitter: spreads the retries of many workers hitting the same failure."""
        return float(rand() * min(self.cap, self.base * (2.0**attempt)))


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (the delay form; dates are not sent by Swift/RGW)."""
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), RETRY_AFTER_CAP)
    except ValueError:
        return None
