"""Request bodies sent to the Sigfox API v2 (openapi.json's request definitions
`deviceCreationJob`, `deviceUpdateJob`, `createCallback`, ...), and the device id as the API
takes it. Unknown fields are an error, so a typo fails here, not as a 400 from the backend;
bodies serialise with camelCase aliases and without None values."""

from __future__ import annotations

import re
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

_HEX = re.compile(r"^[0-9A-Fa-f]+$")


def normalize_device_id(device_id: str) -> str:
    """Sigfox device ids are hexadecimal; the backend and its URLs use upper case."""
    cleaned = device_id.strip()
    if not _HEX.match(cleaned):
        raise ValueError(f"a Sigfox device id is hexadecimal, got {device_id!r}")
    return cleaned.upper()


class SigfoxRequest(BaseModel):
    """Base of request bodies: unknown fields are an error, None means "omit"."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)

    def to_body(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class CertificateRef(SigfoxRequest):
    """Definition `certificateUpdate`: a certificate named by its key, e.g. P_0003_71CF_01."""

    key: str


def _certificate_from_str(value: object) -> object:
    return {"key": value} if isinstance(value, str) else value


class SingleDeviceFields(SigfoxRequest):
    """Definition `singleDeviceFields`: what a device's creation and its update share."""

    lat: float | None = None
    lng: float | None = None
    prototype: bool | None = None
    product_certificate: CertificateRef | None = None
    automatic_renewal: bool | None = None
    activable: bool | None = None

    _cert = field_validator("product_certificate", mode="before")(_certificate_from_str)


class DeviceCreate(SingleDeviceFields):
    """Definition `deviceCreationJob` (POST /devices/): `commonDevice`, `singleDeviceFields`,
    the device type and the PAC."""

    id: str
    name: str = Field(max_length=100)
    device_type_id: str
    pac: str = Field(repr=False)

    _norm_id = field_validator("id")(normalize_device_id)


class DeviceUpdate(SingleDeviceFields):
    """Definition `deviceUpdateJob` (PUT /devices/{id}): `singleDeviceFields` and the name."""

    name: str | None = Field(default=None, max_length=100)


class BulkDeviceCreate(SigfoxRequest):
    """One item of `bulkDeviceAsynchronousRequest.data` (POST /devices/bulk)."""

    id: str
    pac: str | None = Field(default=None, repr=False)
    name: str | None = None
    lat: float | None = None
    lng: float | None = None
    automatic_renewal: bool | None = None
    activable: bool | None = None

    _norm_id = field_validator("id")(normalize_device_id)

    @classmethod
    def from_device_create(cls, device: DeviceCreate) -> Self:
        data = device.model_dump(include=set(cls.model_fields))
        return cls.model_validate(data)


class CallbackDelivery(BaseModel):
    """How a callback is delivered, the same in what Sigfox answers (`urlCallback`,
    `batchUrlCallback`, `emailCallback`) and in what creates one (`createUrlCallback`, ...):
    `Callback` and `CallbackCreate` add these to their own base."""

    payload_config: str | None = None
    url: str | None = None
    headers: dict[str, str] | None = None
    send_sni: bool | None = None
    body_template: str | None = None
    content_type: str | None = None
    line_pattern: str | None = None
    subject: str | None = None
    recipient: str | None = None
    message: str | None = None


class CallbackCreate(SigfoxRequest, CallbackDelivery):
    """Definitions `createUrlCallback`, `createBatchUrlCallback`, `createEmailCallback`."""

    channel: Literal["URL", "BATCH_URL", "EMAIL"]
    callback_type: int
    callback_subtype: int
    enabled: bool
    http_method: Literal["GET", "PUT", "POST"] | None = None
