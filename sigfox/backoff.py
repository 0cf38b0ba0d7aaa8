"""How long a failed Sigfox call waits before it is tried again: exponential back-off with
full jitter, so concurrent clients spread apart instead of retrying in step."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


def full_jitter_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    rng: random.Random,
    retry_after: float | None = None,
) -> float:
    """Delay before retry number `attempt` (0-based): uniform in [0, min(cap, base*2^n)].

    Full jitter spreads concurrent clients apart; a Retry-After (undocumented by Sigfox,
    honoured if ever sent) raises the floor but never past the cap.
    """
    ceiling = min(cap, base * (2**attempt))
    delay = rng.uniform(0.0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, cap)


@dataclass
class BackOff:
    """How long a call is held after a 429, a 5xx or a failed connection: full jitter,
    `base * 2^n` capped at `cap`, n the number of failures in a row."""

    base: float = 0.5
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        return full_jitter_delay(max(failures - 1, 0), base=self.base, cap=self.cap,
                                 rng=self.rng, retry_after=retry_after)
