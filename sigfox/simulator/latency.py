"""How long the simulated backend takes to answer (`sigfox-bot simulator --latency 300ms`).

Sigfox's API answers in hundreds of milliseconds, the simulator in microseconds: code that is
fast against the simulator can still be slow against Sigfox if it waits for one answer before
asking the next. With a latency set, every /v2 answer waits a time drawn from:

- a log-normal distribution whose median is the given latency (answer times are skewed: most
  close to the median, a tail of slower ones, never negative), and
- now and then (`slow_share`, 1 %) a slow answer, `slow_factor` (5) times the drawn time, as a
  busy backend or a retransmitted packet gives.

Each request waits its own time (an asyncio sleep on the server's loop): concurrent requests
overlap, exactly as they would against a remote service, and nothing is serialized.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field

_LATENCY = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)$")
_EXAMPLE = 'write a number and a unit, like "300ms", "0.5s" or "1s"'


def parse_latency(text: str) -> float:
    """`300ms`, `0.5s`, `1s` -> seconds. ValueError saying what is expected otherwise."""
    compact = text.strip().lower().replace(" ", "")
    match = _LATENCY.match(compact)
    if not match:
        raise ValueError(f"{text!r} is not a latency; {_EXAMPLE}")
    value = float(match.group(1))
    seconds = value / 1000 if match.group(2) == "ms" else value
    if seconds > 60:
        raise ValueError(f"{text!r} is too long: a simulated answer waits at most 60s")
    return seconds


@dataclass
class LatencyModel:
    """Answer times with median `median` seconds; `sample()` draws one."""

    median: float
    spread: float = 0.35  # sigma of the underlying normal: ~70 % of answers within ±35 %
    slow_share: float = 0.01
    slow_factor: float = 5.0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.median < 0 or self.spread < 0 or not 0 <= self.slow_share <= 1:
            raise ValueError("latency: median and spread must be >= 0, slow_share in [0, 1]")

    def sample(self) -> float:
        if self.median == 0:
            return 0.0
        drawn = self.median * math.exp(self.rng.gauss(0.0, self.spread))
        if self.rng.random() < self.slow_share:
            drawn *= self.slow_factor
        return drawn

    def describe(self) -> str:
        return (f"median {self.median * 1000:g} ms, log-normal spread {self.spread:g}, "
                f"{self.slow_share:.0%} of answers {self.slow_factor:g}x slower")
