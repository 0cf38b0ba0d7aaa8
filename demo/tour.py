"""The scripted tour `sigfox-bot demo` plays: a renewal from the alert to the first message.

Each step is what a person does in Slack (or what the backend or the scheduler does), followed
by a wait until the bot has answered. A step that does not come about (a button that never
appears, a renewal that never reaches its next state) ends the tour with a clear sentence and a
non-zero exit status instead of hanging.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from demo.terminal_slack import Person
from demo.world import PEOPLE, DemoWorld, wait_for
from sigfox.simulator.entities import TokenState

RELEASE_WAIT_LIMIT = 3 * 3600.0  # virtual seconds; the backend holds an id about 30 minutes
WAITING_STATES = ("awaiting_uplink", "done", "failed")


class TourStopped(Exception):
    """A step did not come about; the message says which and why."""


@dataclass(frozen=True)
class Cast:
    requester: Person
    approver: Person


def pick_expired_device(world: DemoWorld, skip: tuple[str, ...] = ()) -> str:
    """An Off Contract device whose contract can give it a token again (a restart can work)."""
    sim = world.simulator.world
    now = sim.now_ms()
    with sim.lock:
        for device_id in sorted(sim.devices):
            device = sim.devices[device_id]
            if device_id in skip or device.token is None:
                continue
            if device.token.state(now) != TokenState.OFF_CONTRACT:
                continue
            contract = sim.contract_of(device)
            full = contract.max_tokens and contract.tokens_in_use >= contract.max_tokens
            ended = contract.end_ms and contract.end_ms <= now
            if not full and not ended:
                return device_id
    raise TourStopped("the generated fleet has no Off Contract device on a usable contract; "
                      "try another --seed")


def pick_tokenless_device(world: DemoWorld) -> str:
    """A device with no token at all: no restart can help it, only delete and re-register."""
    sim = world.simulator.world
    with sim.lock:
        for device_id in sorted(sim.devices):
            device = sim.devices[device_id]
            contract = sim.contract_of(device)
            full = contract.max_tokens and contract.tokens_in_use >= contract.max_tokens
            if device.token is None and not full:
                return device_id
    raise TourStopped("the generated fleet has no device without a token; try another --seed")


def latest_workflow_id(world: DemoWorld) -> int | None:
    latest = world.core.reads.jobs(active_only=False)
    return latest[0].id if latest else None


def device_state(world: DemoWorld, workflow_id: int) -> str:
    states = world.core.reads.device_states(workflow_id)
    return next(iter(states.values()), "")


def workflow_state(world: DemoWorld, workflow_id: int) -> str:
    job = world.core.reads.job(workflow_id)
    return job.state if job else ""


def play(world: DemoWorld) -> None:
    """The whole tour; raises TourStopped when a step does not happen."""
    cast = Cast(requester=PEOPLE[0], approver=PEOPLE[1])
    narrate = world.slack.narrate
    restartable = pick_expired_device(world)
    tokenless = pick_tokenless_device(world)
    narrate("1. The scheduled fleet scan posts its digest")
    report = world.alerts.scan(started_by="schedule")
    if not report.ok:
        raise TourStopped(f"the fleet scan failed: {report.error}")
    world.settle()

    narrate(f"2. {cast.requester.name} asks to renew {restartable}, Off Contract")
    restart = _start_job(world, cast.requester, f"renew {restartable}")
    _finish(world, restart, restartable)

    narrate(f"3. {tokenless} has no token, so no restart: renewing it deletes it")
    renewal = _start_job(world, cast.requester, f"renew {tokenless}")
    _click(world, cast.requester, "Approve")
    if workflow_state(world, renewal) != "awaiting_approval":
        raise TourStopped("the requester's own approval was not refused")
    _click(world, cast.approver, "Approve")
    if not wait_for(lambda: device_state(world, renewal) not in ("", "pending")):
        raise TourStopped("the approved renewal did not start")
    world.settle()

    narrate("4. Sigfox holds a deleted id ~30 min: the clock runs fast")
    released = world.fast_forward(RELEASE_WAIT_LIMIT,
                                  until=lambda: device_state(world, renewal) in WAITING_STATES)
    world.settle()
    if not released or device_state(world, renewal) != "awaiting_uplink":
        raise TourStopped(f"the device was not registered again (now "
                          f"{device_state(world, renewal) or 'unknown'})")
    _finish(world, renewal, tokenless)

    narrate(f"5. {cast.requester.name} checks what ends in the next 30 days")
    world.command(cast.requester, "expiring")
    narrate("Done, no PAC shown. Your turn: sigfox-bot demo --interactive")


def _start_job(world: DemoWorld, person: Person, text: str) -> int:
    before = latest_workflow_id(world)
    world.command(person, text)
    workflow_id = latest_workflow_id(world)
    if workflow_id is None or workflow_id == before:
        raise TourStopped(f"`/sigfox {text}` started no job")
    return workflow_id


def _finish(world: DemoWorld, workflow_id: int, device: str) -> None:
    """Let the job run; when it waits for the device's first message, the device sends one."""
    def settled() -> bool:
        return (workflow_state(world, workflow_id) in ("done", "failed")
                or device_state(world, workflow_id) == "awaiting_uplink")

    world.fast_forward(RELEASE_WAIT_LIMIT, until=settled)
    if device_state(world, workflow_id) == "awaiting_uplink":
        world.uplink(device)
    if not wait_for(lambda: workflow_state(world, workflow_id) in ("done", "failed")):
        raise TourStopped(f"the job on {device} did not finish")
    world.settle()
    if workflow_state(world, workflow_id) != "done":
        raise TourStopped(f"the job on {device} failed")


def _click(world: DemoWorld, person: Person, label: str) -> None:
    # The bot posts from its own threads: on a loaded machine the button may come after a
    # quiet moment that `settle` took for the end.
    wait_for(lambda: world.slack.find_button(label) is not None)
    if not world.click(person, label):
        raise TourStopped(f"no [ {label} ] button to click")


def run_tour(world: DemoWorld, on_stop: Callable[[str], None]) -> int:
    """Play the tour; 0 when every step happened, else 1 after telling `on_stop` why."""
    try:
        play(world)
    except TourStopped as stopped:
        on_stop(f"The tour stopped: {stopped}.")
        return 1
    return 0
