"""Everything Sigfox: the API v2 client and, in `sigfox.simulator`, a simulated backend.

- `SigfoxClient` (client.py): Basic auth, `paging.next`, pacing to the published limits,
  back-off on 429, every answer validated into a model; built on private modules: one paced,
  retried call (transport.py), list walking (listing.py), bulk job bodies (bulk.py), HTTP
  answers turned into errors (http_errors.py);
- the models (models/): `Device`, `DeviceType`, `ContractInfo`, `Group`, `Callback`,
  `BulkJob`, the requests `DeviceCreate` and `CallbackCreate`, the enums `TokenState` and
  `JobKind`, and `normalize_device_id`;
- the errors (errors.py): `SigfoxError` and one subclass per answer a caller handles apart.
"""

from sigfox.client import SigfoxClient
from sigfox.errors import (
    SigfoxBadRequest,
    SigfoxConfigError,
    SigfoxConflict,
    SigfoxConnectionError,
    SigfoxError,
    SigfoxForbidden,
    SigfoxNotFound,
    SigfoxPacingRefused,
    SigfoxRateLimited,
    SigfoxServerError,
    SigfoxUnauthorized,
)
from sigfox.models.codes import TokenState
from sigfox.models.jobs import BulkJob, JobKind
from sigfox.models.requests import CallbackCreate, DeviceCreate, normalize_device_id
from sigfox.models.resources import Callback, ContractInfo, Device, DeviceType, Group

__all__ = [
    "BulkJob",
    "Callback",
    "CallbackCreate",
    "ContractInfo",
    "Device",
    "DeviceCreate",
    "DeviceType",
    "Group",
    "JobKind",
    "SigfoxBadRequest",
    "SigfoxClient",
    "SigfoxConfigError",
    "SigfoxConflict",
    "SigfoxConnectionError",
    "SigfoxError",
    "SigfoxForbidden",
    "SigfoxNotFound",
    "SigfoxPacingRefused",
    "SigfoxRateLimited",
    "SigfoxServerError",
    "SigfoxUnauthorized",
    "TokenState",
    "normalize_device_id",
]
