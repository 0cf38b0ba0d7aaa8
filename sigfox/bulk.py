"""The bodies of Sigfox's bulk jobs and where each kind's status is read, from the Swagger
document (tests/specs/sigfox-api-v2/openapi.json); `SigfoxClient` sends them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sigfox.models import (
    ActionJobStatus,
    BulkDeviceCreate,
    BulkJob,
    DeviceCreate,
    JobKind,
    RegistrationJobStatus,
    normalize_device_id,
)
from sigfox.transport import segment, without_unset

# Status endpoint of each job kind: create, edit and transfer share GET /devices/bulk/{jobId}
# (registrationJobStatus); restart and unsubscribe have their own (actionJob).
_JOB_STATUS = {
    JobKind.CREATE: "/devices/bulk/{jobId}",
    JobKind.EDIT: "/devices/bulk/{jobId}",
    JobKind.TRANSFER: "/devices/bulk/{jobId}",
    JobKind.RESTART: "/devices/bulk/restart/{jobId}",
    JobKind.UNSUBSCRIBE: "/devices/bulk/unsubscribe/{jobId}",
}
_REGISTRATION_KINDS = frozenset({JobKind.CREATE, JobKind.EDIT, JobKind.TRANSFER})


def create_body(
    device_type_id: str,
    devices: Iterable[BulkDeviceCreate | DeviceCreate],
    *,
    prefix: str | None,
    prototype: bool | None,
    product_certificate_key: str | None,
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The body of POST /devices/bulk, and the PACs it carries (secrets to scrub)."""
    items = [
        d if isinstance(d, BulkDeviceCreate) else BulkDeviceCreate.from_device_create(d)
        for d in devices
    ]
    certificate = {"key": product_certificate_key} if product_certificate_key else None
    body = without_unset(
        deviceTypeId=device_type_id,
        prefix=prefix,
        prototype=prototype,
        productCertificate=certificate,
        data=[item.to_body() for item in items],
    )
    return body, tuple(item.pac for item in items if item.pac)


def transfer_body(
    device_type_id: str, device_ids: Iterable[str], *, keep_history: bool, activable: bool
) -> dict[str, Any]:
    """The body of POST /devices/bulk/transfer."""
    data = [
        {"id": normalize_device_id(d), "keepHistory": keep_history, "activable": activable}
        for d in device_ids
    ]
    return {"deviceTypeId": device_type_id, "data": data}


def restart_body(device_ids: Iterable[str]) -> dict[str, Any]:
    """The body of POST /devices/bulk/restart."""
    return {"data": [normalize_device_id(d) for d in device_ids]}


def unsubscribe_body(device_ids: Iterable[str], unsubscription_time_ms: int) -> dict[str, Any]:
    """The body of POST /devices/bulk/unsubscribe."""
    when = int(unsubscription_time_ms)
    return {"data": [{"id": normalize_device_id(d), "unsubscriptionTime": when}
                     for d in device_ids]}


def status_endpoint(kind: JobKind, job_id: str) -> tuple[str, str]:
    """The status endpoint the spec gives the job's kind: its template and its path."""
    template = _JOB_STATUS[kind]
    return template, template.replace("{jobId}", segment(job_id))


def job_from_status(kind: JobKind, job_id: str, raw: dict[str, Any]) -> BulkJob:
    """The job, read from the status its kind's endpoint answered."""
    if kind in _REGISTRATION_KINDS:
        status = RegistrationJobStatus.model_validate(raw)
        return BulkJob.from_registration(kind, job_id, status)
    return BulkJob.from_action(kind, job_id, ActionJobStatus.model_validate(raw))
