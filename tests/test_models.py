"""The models of the Sigfox API (sigfox/models/): tolerant answers, strict request bodies."""

from __future__ import annotations

import json

import pytest
from support.fake_sigfox import DEVICE, PAC

from sigfox.models import (
    Callback,
    ComState,
    ContractInfo,
    Device,
    DeviceCreate,
    DeviceState,
    TokenState,
)


def test_device_model_tolerates_unknown_fields_and_codes() -> None:
    raw = {
        **DEVICE,
        "state": 42,
        "comState": 5,
        "brandNewField": {"x": 1},
        "token": {"state": 1, "end": 1_700_000_000_000, "detailMessage": "Off Contract"},
        "deviceType": {"id": "dt", "name": "Type", "actions": ["read"]},
    }
    device = Device.model_validate(raw)
    assert device.state == 42 and device.state.name == "UNKNOWN_42"
    assert device.com_state is ComState.NOT_SEEN
    assert device.token_state is TokenState.OFF_CONTRACT
    assert device.token_end_datetime is not None and device.token_end_datetime.year == 2023
    assert device.can_be_deleted
    assert device.device_type is not None and device.device_type.name == "Type"


def test_device_without_token_is_token_not_consumed() -> None:
    device = Device.model_validate({"id": "1A2B"})
    assert device.token is None and device.token_state is None
    assert device.can_be_deleted and device.token_end_datetime is None
    ok = Device.model_validate({"id": "1", "state": 0, "token": {"state": 0}})
    assert ok.state is DeviceState.OK and not ok.can_be_deleted


def test_device_create_serialises_with_aliases_and_without_none() -> None:
    body = DeviceCreate(
        id="ab12", name="n", device_type_id="t", pac=PAC, lat=1.5, product_certificate="P_1"
    ).to_body()
    assert body == {
        "id": "AB12",
        "name": "n",
        "deviceTypeId": "t",
        "pac": PAC,
        "lat": 1.5,
        "productCertificate": {"key": "P_1"},
    }
    with pytest.raises(ValueError):
        DeviceCreate(id="1A2B", name="n", device_type_id="t", pac=PAC, colour="red")


def test_contract_tokens_left() -> None:
    assert ContractInfo(id="c", max_tokens=10, tokens_in_use=4).tokens_left == 6
    assert ContractInfo(id="c", max_tokens=0, tokens_in_use=4).tokens_left is None
    assert ContractInfo(id="c", communication_end_time=0).end_time is None


def test_callback_copy_drops_read_only_fields() -> None:
    callback = Callback.model_validate(
        {
            "id": "cb",
            "channel": "URL",
            "callbackType": 0,
            "callbackSubtype": 2,
            "enabled": True,
            "dead": True,
            "downlinkHook": False,
            "url": "https://x/{device}",
            "httpMethod": "GET",
        }
    )
    body = callback.to_create().to_body()
    assert body == {
        "channel": "URL",
        "callbackType": 0,
        "callbackSubtype": 2,
        "enabled": True,
        "url": "https://x/{device}",
        "httpMethod": "GET",
    }
    assert json.dumps(body)
