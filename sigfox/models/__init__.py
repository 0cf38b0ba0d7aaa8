"""Typed models of the Sigfox API v2 resources the bot uses.

Field names, types and enum codes come from the service's Swagger document
(tests/specs/sigfox-api-v2/openapi.json). What a module here holds:

- codes.py: the enum codes, tolerant of codes the service adds later;
- resources.py: the response models (`Device`, `DeviceType`, `ContractInfo`, ...), which
  tolerate unknown fields and read each field as docs/sigfox-semantics.md says;
- jobs.py: bulk job kinds and statuses, as one `BulkJob`;
- requests.py: the request bodies, which forbid unknown fields, and `normalize_device_id`.
"""

from sigfox.models.codes import (
    AutomaticRenewalStatus,
    CallbackSubtype,
    CallbackType,
    ComState,
    DeviceState,
    JobErrorType,
    TokenState,
)
from sigfox.models.jobs import (
    ActionJobStatus,
    ActionProgress,
    BulkJob,
    JobError,
    JobKind,
    RegistrationJobStatus,
    RegistrationProgress,
)
from sigfox.models.requests import (
    BulkDeviceCreate,
    CallbackCreate,
    CallbackDelivery,
    CertificateRef,
    DeviceCreate,
    DeviceUpdate,
    SigfoxRequest,
    SingleDeviceFields,
    normalize_device_id,
)
from sigfox.models.resources import (
    Callback,
    Certificate,
    ContractInfo,
    Device,
    DeviceType,
    Group,
    Location,
    Message,
    MinRef,
    SigfoxModel,
    Token,
    ms_to_datetime,
)

__all__ = [
    "ActionJobStatus",
    "ActionProgress",
    "AutomaticRenewalStatus",
    "BulkDeviceCreate",
    "BulkJob",
    "Callback",
    "CallbackCreate",
    "CallbackDelivery",
    "CallbackSubtype",
    "CallbackType",
    "Certificate",
    "CertificateRef",
    "ComState",
    "ContractInfo",
    "Device",
    "DeviceCreate",
    "DeviceState",
    "DeviceType",
    "DeviceUpdate",
    "Group",
    "JobError",
    "JobErrorType",
    "JobKind",
    "Location",
    "Message",
    "MinRef",
    "RegistrationJobStatus",
    "RegistrationProgress",
    "SigfoxModel",
    "SigfoxRequest",
    "SingleDeviceFields",
    "Token",
    "TokenState",
    "ms_to_datetime",
    "normalize_device_id",
]
