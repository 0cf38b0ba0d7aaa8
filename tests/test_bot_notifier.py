"""The notifier's pace: Slack accepts about one message per second per channel."""

from __future__ import annotations

from bot.posting import ChannelPacer


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_writes_to_one_channel_are_spaced_by_the_interval() -> None:
    fake = FakeTime()
    pacer = ChannelPacer(1.0, clock=fake.clock, sleep=fake.sleep)
    for _ in range(3):
        pacer.wait("C1")
    assert fake.slept == [1.0, 1.0]  # the first write goes at once


def test_channels_are_paced_independently_and_idle_time_counts() -> None:
    fake = FakeTime()
    pacer = ChannelPacer(1.0, clock=fake.clock, sleep=fake.sleep)
    pacer.wait("C1")
    pacer.wait("C2")  # another channel: no wait
    assert fake.slept == []
    fake.now += 0.4
    pacer.wait("C1")  # 0.4 s already passed since the last write there
    assert fake.slept == [0.6]
    fake.now += 5
    pacer.wait("C1")
    assert fake.slept == [0.6]
