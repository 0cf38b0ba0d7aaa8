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
from sigfox.simulator.model import TokenState

RELEASE_WAIT_LIMIT = 3 * 3600.0  # virtual seconds; the backend holds an id about 30 minutes
WAITING_STATES = ("awaiting_uplink", "done", "failed")


class TourStopped(Exception):
    """A step did not come about; the message says which and why."""


@dataclass(frozen=True)
class Cast:
    requester: Person
    approver: Person


def pick_expired_device(world: DemoWorld) -> str:
    """An Off Contract device whose contract can give it a token again (a renewal can work)."""
    sim = world.simulator.world
    now = sim.now_ms()
    with sim.lock:
        for device_id in sorted(sim.devices):
            device = sim.devices[device_id]
            if device.token is None or device.token.state(now) != TokenState.OFF_CONTRACT:
                continue
            contract = sim.contract_of(device)
            full = contract.max_tokens and contract.tokens_in_use >= contract.max_tokens
            ended = contract.end_ms and contract.end_ms <= now
            if not full and not ended:
                return device_id
    raise TourStopped("the generated fleet has no Off Contract device on a usable contract; "
                      "try another --seed")


def latest_workflow_id(world: DemoWorld) -> int | None:
    latest = world.core.store.list_workflows(limit=1)
    return latest[0].id if latest else None


def device_state(world: DemoWorld, workflow_id: int) -> str:
    steps = world.core.store.workflow_devices(workflow_id)
    return steps[0].state if steps else ""


def workflow_state(world: DemoWorld, workflow_id: int) -> str:
    workflow = world.core.store.get_workflow(workflow_id)
    return workflow.state if workflow else ""


def play(world: DemoWorld) -> None:
    """The whole tour; raises TourStopped when a step does not happen."""
    cast = Cast(requester=PEOPLE[0], approver=PEOPLE[1])
    narrate = world.slack.narrate
    device = pick_expired_device(world)
    narrate(f"A fleet of {world.settings.devices} simulated Sigfox devices. "
            f"{cast.requester.name} runs the fleet; {cast.approver.name} approves deletes")

    narrate("1. The scheduled fleet scan posts its alert digest")
    report = world.alerts.scan(started_by="schedule")
    if not report.ok:
        raise TourStopped(f"the fleet scan failed: {report.error}")
    world.settle()

    narrate(f"2. {cast.requester.name} looks at an expired (Off Contract) device")
    world.command(cast.requester, f"status {device}")

    narrate(f"3. {cast.requester.name} asks the bot to renew it")
    before = latest_workflow_id(world)
    world.command(cast.requester, f"renew {device} by delete")
    workflow_id = latest_workflow_id(world)
    if workflow_id is None or workflow_id == before:
        raise TourStopped(f"`/sigfox renew {device}` started no job")

    narrate(f"4. {cast.requester.name} tries to approve their own request")
    _click(world, cast.requester, "Approve")
    if workflow_state(world, workflow_id) != "awaiting_approval":
        raise TourStopped("the requester's own approval was not refused")

    narrate(f"5. {cast.approver.name}, an approver, approves: the bot deletes the device")
    _click(world, cast.approver, "Approve")
    if not wait_for(lambda: device_state(world, workflow_id) not in ("", "pending")):
        raise TourStopped("the approved renewal did not start")
    world.settle()

    narrate("6. Sigfox holds a deleted id ~30 minutes: fast-forwarding the virtual clock")
    released = world.fast_forward(RELEASE_WAIT_LIMIT,
                                  until=lambda: device_state(world, workflow_id) in WAITING_STATES)
    world.settle()
    if not released or device_state(world, workflow_id) != "awaiting_uplink":
        raise TourStopped(f"the device was not registered again (now "
                          f"{device_state(world, workflow_id) or 'unknown'})")

    narrate(f"7. Device {device} wakes up and sends its first message")
    world.uplink(device)
    if not wait_for(lambda: workflow_state(world, workflow_id) in ("done", "failed")):
        raise TourStopped("the renewal did not finish after the first message")
    world.settle()

    narrate(f"8. {cast.requester.name} checks what expires in the next 30 days")
    world.command(cast.requester, "expiring")
    narrate(f"Done: {device} renewed, approved by {cast.approver.name}, PAC never shown. "
            "Try `sigfox-bot demo --interactive`")


def _click(world: DemoWorld, person: Person, label: str) -> None:
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
