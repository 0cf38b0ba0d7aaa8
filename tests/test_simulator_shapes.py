"""The simulated backend stops agreeing with the bot by construction: what openapi.json allows,
it varies (by the fleet's seed), so the bot's code meets every shape of every optional field."""

from __future__ import annotations

from click.testing import CliRunner

from bot.cli import main
from commands.steps import first_message_failure
from sigfox.models import Device
from sigfox.simulator import json_bodies
from sigfox.simulator.backend import World
from sigfox.simulator.fleet_generator import build_fleet


def shapes_of(seed: int) -> tuple[set[tuple[bool, bool]], bool]:
    world = World(seed=seed)
    build_fleet(world, 40, seed=seed)
    bodies = [json_bodies.device_type(world, t) for t in world.device_types.values()]
    shapes = {("contract" in b, "contracts" in b) for b in bodies}
    return shapes, world.tokenless_devices_show_contract


def test_seeds_choose_how_device_types_show_their_contracts() -> None:
    seen: set[tuple[bool, bool]] = set()
    tokenless: set[bool] = set()
    for seed in range(1, 9):
        shapes, shows = shapes_of(seed)
        seen |= shapes
        tokenless.add(shows)
    assert seen == {(True, True), (False, True), (True, False)}
    assert tokenless == {True, False}  # a device without token with and without `contract`
    assert shapes_of(3) == shapes_of(3)  # the same seed, the same shapes


def test_the_fleet_has_several_and_detached_contracts_and_used_tokens() -> None:
    world = World(seed=5)
    build_fleet(world, 200, seed=5)
    bodies = [json_bodies.device_type(world, t) for t in world.device_types.values()]
    assert any(len(b.get("contracts", [])) > 1 for b in bodies) or any(
        len(t.contract_ids) > 1 for t in world.device_types.values())
    assert any(b.get("detachedContracts") for b in bodies)
    assert any(c.tokens_used for c in world.contracts.values())
    renewing = {d.automatic_renewal for d in world.devices.values()}
    assert renewing == {True, False}


def test_contracts_can_close_to_activations_before_they_end_or_not_have_started() -> None:
    world = World(seed=1)
    now = world.now_ms()
    closed = world.add_contract("Closed", order_id="o", order_name="O",
                                activation_end_ms=now - 1, end_ms=now + 10**9)
    later = world.add_contract("Later", order_id="o", order_name="O", start_ms=now + 10**9)
    body = json_bodies.contract(world, closed)
    assert body["activationEndTime"] < body["communicationEndTime"]
    for contract in (closed, later):
        dtype = world.add_device_type(f"On {contract.name}", contract.id)
        device = world.add_device(device_type_id=dtype.id)
        world.uplink(device.id)
        assert world.token_state(device).name == "OFF_CONTRACT"  # the first message finds none


def test_a_device_that_is_not_activable_takes_no_token_and_hidden_pacs_are_left_out() -> None:
    world = World(seed=1, hide_pacs=True)
    contract = world.add_contract("Open", order_id="o", order_name="O")
    dtype = world.add_device_type("T", contract.id)
    device = world.add_device(device_type_id=dtype.id, activable=False)
    world.uplink(device.id)
    body = json_bodies.device(world, device)
    assert "token" not in body and body["state"] == 7  # NOT_ACTIVABLE
    assert "pac" not in body


def test_the_simulator_command_offers_hide_pacs() -> None:
    result = CliRunner().invoke(main, ["simulator", "--help"])
    assert result.exit_code == 0 and "--hide-pacs" in result.output


def test_a_first_message_leaving_the_device_unusable_is_a_failure_with_sigfoxs_words() -> None:
    def device(**fields) -> Device:
        return Device.model_validate({"id": "1A2B3C", **fields})

    off = first_message_failure(device(token={"state": 1, "detailMessage": "Off Contract"}))
    assert "Sigfox says “Off Contract”" in off and "restart 1A2B3C" in off
    invalid = first_message_failure(device(token={"state": 3, "detailMessage": "Invalid"}))
    assert "Sigfox says “Invalid”" in invalid and "another message" in invalid
    blocked = first_message_failure(device(state=7, activable=False))
    assert "NOT_ACTIVABLE" in blocked and "activable" in blocked
    assert first_message_failure(device(token={"state": 0})) == ""
    assert first_message_failure(device()) == ""  # no token yet: keep waiting
