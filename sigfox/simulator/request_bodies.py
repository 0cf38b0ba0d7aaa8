"""The request bodies the simulated API accepts, checked as the real one checks them: a body
that breaks a rule answers 400 with `ErrorContent` naming the field (see api_errors.py)."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, TypeGuard

from sigfox.simulator.api_errors import ApiError, field_error
from sigfox.simulator.entities import Device

HEX_ID = re.compile(r"^[0-9A-Fa-f]{1,8}$")
HEX_PAC = re.compile(r"^[0-9A-Fa-f]{16}$")
HEX_DATA = re.compile(r"^(?:[0-9A-Fa-f]{2}){0,12}$")
MAX_NAME = 100

CREATE_FIELDS = {
    "id", "name", "deviceTypeId", "pac", "prototype", "automaticRenewal", "activable",
    "lat", "lng", "productCertificate",
}
UPDATE_FIELDS = {
    "name", "lat", "lng", "prototype", "automaticRenewal", "activable", "productCertificate",
}


def creation_fields(body: Any, device_types: Collection[str]) -> dict[str, Any]:
    """The fields of a device creation (POST /devices/), its id upper-cased."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object")
    _reject_unknown(body, CREATE_FIELDS)
    for required in ("id", "name", "deviceTypeId", "pac"):
        if required not in body:
            raise field_error(required, f"{required} is required")
    ident = body["id"]
    if not isinstance(ident, str) or not HEX_ID.match(ident):
        raise field_error("id", "The device id must be 1 to 8 hexadecimal digits")
    if not isinstance(body["pac"], str) or not HEX_PAC.match(body["pac"]):
        raise field_error("pac", "The PAC must be 16 hexadecimal characters")
    if body["deviceTypeId"] not in device_types:
        raise field_error("deviceTypeId", "Unknown device type")
    _check_common_fields(body)
    return {**body, "id": ident.upper()}



def update_fields(body: Any) -> dict[str, Any]:
    """The fields of a device update (PUT /devices/{id}), checked."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object")
    _reject_unknown(body, UPDATE_FIELDS)
    _check_common_fields(body)
    return body


def job_size(kind: str, payload: Any, device_types: Collection[str]) -> int:
    """How many items a bulk request of `kind` carries, once its body is checked."""
    if not isinstance(payload, dict):
        raise ApiError(400, "The request body must be a JSON object")
    data = payload.get("data")
    if not isinstance(data, list):
        raise field_error("data", "data must be a list")
    if kind in ("create", "transfer"):
        if payload.get("deviceTypeId") not in device_types:
            raise field_error("deviceTypeId", "Unknown device type")
        if not all(isinstance(item, dict) and isinstance(item.get("id"), str) for item in data):
            raise field_error("data", "every item needs an id")
    elif kind == "restart" and not all(isinstance(item, str) for item in data):
        raise field_error("data", "data must be a list of device ids")
    elif kind == "unsubscribe" and not all(
        isinstance(item, dict) and isinstance(item.get("id"), str) for item in data
    ):
        raise field_error("data", "every item needs an id")
    return len(data)




def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _reject_unknown(body: dict[str, Any], allowed: set[str]) -> None:
    for key in body:
        if key not in allowed:
            raise field_error(key, "extra fields not permitted")


def _check_common_fields(body: dict[str, Any]) -> None:
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_NAME:
        raise field_error("name", f"name must be a string of at most {MAX_NAME} characters")
    for key, low, high in (("lat", -90, 90), ("lng", -180, 180)):
        if key in body and not (_is_number(body[key]) and low <= body[key] <= high):
            raise field_error(key, f"{key} must be a number between {low} and {high}")
    for key in ("prototype", "automaticRenewal", "activable"):
        if key in body and not isinstance(body[key], bool):
            raise field_error(key, f"{key} must be a boolean")
    cert = body.get("productCertificate")
    if cert is not None and not (isinstance(cert, dict) and isinstance(cert.get("key", ""), str)):
        raise field_error("productCertificate", "productCertificate must be {\"key\": ...}")


def apply_update(device: Device, body: dict[str, Any]) -> None:
    simple = {
        "name": "name", "lat": "lat", "lng": "lng", "prototype": "prototype",
        "automaticRenewal": "automatic_renewal", "activable": "activable",
    }
    for key, attr in simple.items():
        if key in body:
            setattr(device, attr, body[key])
    if isinstance(body.get("productCertificate"), dict):
        device.product_certificate = body["productCertificate"].get("key", "")


CALLBACK_FIELDS = {
    "channel": "channel", "callbackType": "callback_type", "callbackSubtype": "callback_subtype",
    "url": "url", "httpMethod": "http_method", "headers": "headers",
    "bodyTemplate": "body_template", "contentType": "content_type",
    "payloadConfig": "payload_config", "sendSni": "send_sni", "enabled": "enabled",
}


def callback_fields(body: Any) -> dict[str, Any]:
    """The fields of a new callback, by the simulator's attribute names."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object")
    _reject_unknown(body, set(CALLBACK_FIELDS))
    for required in ("channel", "callbackType", "callbackSubtype", "enabled"):
        if required not in body:
            raise field_error(required, f"{required} is required")
    if body["channel"] != "URL":
        raise field_error("channel", "only URL callbacks are simulated")
    if not isinstance(body.get("url"), str) or not body["url"].startswith(("http://", "https://")):
        raise field_error("url", "url must be an http(s) URL")
    if body.get("httpMethod") not in ("GET", "PUT", "POST"):
        raise field_error("httpMethod", "httpMethod must be GET, PUT or POST")
    headers = body.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise field_error("headers", "headers must map names to strings")
    return {CALLBACK_FIELDS[k]: v for k, v in body.items()}
