"""The simulated backend's entities and the enum codes of the API (from the spec and its notes,
tests/specs/sigfox-api-v2/SOURCE.md).

Plain mutable dataclasses: the `World` owns them and guards every change with its lock.
Times are kept in epoch milliseconds, like the API, so rendering never converts.

The enums repeat the client's (`sigfox/models/codes.py`) on purpose: the simulator stands for
Sigfox's side of the contract, and a code mistyped in one shared enum would pass every test on
both sides at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class TokenState(IntEnum):
    OK = 0
    OFF_CONTRACT = 1
    NA_FOR_API = 2
    INVALID_TOKEN = 3


TOKEN_DETAIL = {
    TokenState.OK: "Valid",
    TokenState.OFF_CONTRACT: "Off Contract",
    TokenState.NA_FOR_API: "Not applicable for API",
    TokenState.INVALID_TOKEN: "Invalid",
}


class DeviceState(IntEnum):
    OK = 0
    DEAD = 1
    OFF_CONTRACT = 2
    DISABLED = 3
    WARN = 4
    DELETED = 5
    SUSPENDED = 6
    NOT_ACTIVABLE = 7


class ComState(IntEnum):
    NO = 0
    OK = 1
    WARN = 2
    KO = 3
    NA = 4
    NOT_SEEN = 5


class GroupType(IntEnum):
    SO = 0
    BASIC = 2


@dataclass(slots=True)
class Group:
    id: str
    name: str
    type: int = GroupType.BASIC
    level: int = 1
    parent_id: str | None = None
    timezone: str = "UTC"
    creation_ms: int = 0


@dataclass(slots=True)
class Contract:
    """A contract info. Its order is only an id and a name, as the API shows it."""

    id: str
    name: str
    order_id: str
    order_name: str
    group_id: str
    max_tokens: int  # 0 means unlimited, as in the spec
    token_duration: int  # months; 0 means unlimited
    start_ms: int
    end_ms: int  # communicationEndTime; 0 means no limit
    automatic_renewal: bool = True
    activation_end_ms: int | None = None  # activationEndTime; None: the same as end_ms
    tokens_in_use: int = 0
    tokens_used: int = 0
    external_id: str = ""
    creation_ms: int = 0

    def has_free_token(self) -> bool:
        return self.max_tokens == 0 or self.tokens_in_use < self.max_tokens

    def is_open(self, now_ms: int) -> bool:
        return now_ms >= self.start_ms and (self.end_ms == 0 or now_ms < self.end_ms)

    @property
    def activation_end(self) -> int:
        return self.end_ms if self.activation_end_ms is None else self.activation_end_ms

    def can_activate(self, now_ms: int) -> bool:
        """A new token can be taken now: started, not ended, open to activations, not full."""
        closed = self.activation_end != 0 and now_ms >= self.activation_end
        return self.is_open(now_ms) and not closed and self.has_free_token()


@dataclass(slots=True)
class Callback:
    id: str
    channel: str = "URL"
    callback_type: int = 0  # DATA
    callback_subtype: int = 2  # UPLINK
    url: str = ""
    http_method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    body_template: str = ""
    content_type: str = ""
    payload_config: str = ""
    send_sni: bool = False
    enabled: bool = True
    dead: bool = False


# How a device type shows its contracts (openapi.json: `contract` is the older single field,
# `contracts[]` the current list; either may be absent). Chosen per type from the world's seed;
# "none" (neither field: a type the API user sees no contract of) only when asked for.
TYPE_SHAPES = ("both", "contracts", "contract")
ALL_TYPE_SHAPES = (*TYPE_SHAPES, "none")


@dataclass(slots=True)
class DeviceType:
    id: str
    name: str
    contract_id: str  # the first contract; devices take their tokens from these in order
    group_id: str
    description: str = ""
    automatic_renewal: bool = True
    keep_alive: int = 0
    payload_type: int = 2
    downlink_mode: int = 0
    creation_ms: int = 0
    callbacks: list[Callback] = field(default_factory=list)
    more_contract_ids: list[str] = field(default_factory=list)  # several contracts
    detached_contract_ids: list[str] = field(default_factory=list)
    shape: str = "both"  # one of TYPE_SHAPES

    @property
    def contract_ids(self) -> list[str]:
        return [self.contract_id, *self.more_contract_ids]


@dataclass(slots=True)
class Token:
    """A token taken on `contract_id`. `off_contract` marks the Off Contract state; otherwise the
    state (OK or Invalid) follows from `end_ms` and the virtual clock."""

    contract_id: str
    end_ms: int | None
    off_contract: bool = False
    activation_ms: int = 0

    def state(self, now_ms: int) -> TokenState:
        if self.off_contract:
            return TokenState.OFF_CONTRACT
        if self.end_ms is not None and now_ms >= self.end_ms:
            return TokenState.INVALID_TOKEN
        return TokenState.OK


@dataclass(slots=True)
class Message:
    time_ms: int
    data: str
    seq_number: int
    lqi: int = 2
    nb_frames: int = 3


@dataclass(slots=True)
class Device:
    id: str
    name: str
    pac: str
    device_type_id: str
    group_id: str
    creation_ms: int
    lat: float = 0.0
    lng: float = 0.0
    token: Token | None = None
    last_com_ms: int | None = None
    sequence_number: int | None = None
    activable: bool = True
    automatic_renewal: bool = True
    prototype: bool = False
    product_certificate: str = ""
    unsubscription_ms: int | None = None
    last_edition_ms: int | None = None
    messages: list[Message] = field(default_factory=list)


@dataclass(slots=True)
class DeletedDevice:
    """What the backend still knows about a deleted id while it finishes removing it."""

    id: str
    deleted_ms: int
    release_ms: int


@dataclass(slots=True)
class Job:
    """An asynchronous bulk job. `kind` is one of create, transfer, restart, unsubscribe."""

    id: str
    kind: str
    payload: dict
    total: int
    created_real: float
    created_virtual_ms: int
    done: bool = False
    success: int = 0
    errors: list[dict] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)
