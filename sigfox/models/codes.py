"""The enum codes of the Sigfox API v2 (from openapi.json's field descriptions): unknown codes
become `UNKNOWN_<code>` members instead of failing, since the live service adds codes over
time and a new one must not break a scan of 150,000 devices."""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class _TolerantIntEnum(IntEnum):
    """An IntEnum that maps a code it does not know to a pseudo-member `UNKNOWN_<code>`."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            member = int.__new__(cls, value)
            member._name_ = f"UNKNOWN_{value}"
            member._value_ = value
            return member
        return None


class TokenState(_TolerantIntEnum):
    OK = 0
    OFF_CONTRACT = 1
    NA_FOR_API = 2
    INVALID = 3


class DeviceState(_TolerantIntEnum):
    OK = 0
    DEAD = 1
    OFF_CONTRACT = 2
    DISABLED = 3
    WARN = 4
    DELETED = 5
    SUSPENDED = 6
    NOT_ACTIVABLE = 7


class ComState(_TolerantIntEnum):
    NO = 0
    OK = 1
    WARN = 2
    KO = 3
    NA = 4
    NOT_SEEN = 5


class AutomaticRenewalStatus(_TolerantIntEnum):
    """`device.automaticRenewalStatus`, "computed automatic renewal status" (openapi.json)."""

    ALLOWED = 0
    NOT_ALLOWED = 1
    RENEWED = 2
    ENDED = 3


class CallbackType(_TolerantIntEnum):
    DATA = 0
    SERVICE = 1
    ERROR = 2


class CallbackSubtype(_TolerantIntEnum):
    STATUS = 0
    GEOLOC = 1
    UPLINK = 2
    BIDIR = 3
    ACKNOWLEDGE = 4
    REPEATER = 5
    DATA_ADVANCED = 6


class JobErrorType(_TolerantIntEnum):
    ENTITY = 0
    SYSTEM = 1
