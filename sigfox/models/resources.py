"""Response models of the Sigfox API v2 resources the bot reads (openapi.json's definitions
`device`, `token`, `deviceType`, `contractInfo`, `group`, `callback`, `deviceMessage`).

They tolerate unknown fields (`extra="allow"`): the live service adds fields over time. Every
field the service may omit is optional: Sigfox omits empty fields rather than sending null.
How each field is read (and what its absence means) is written down, field by field, in
docs/sigfox-semantics.md; where the description is ambiguous the reading that cannot destroy
anything is taken, and the properties below say which.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from sigfox.models.codes import (
    AutomaticRenewalStatus,
    CallbackSubtype,
    CallbackType,
    ComState,
    DeviceState,
    TokenState,
)
from sigfox.models.requests import CallbackCreate, CallbackDelivery


def ms_to_datetime(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _day(ms: int) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")
    except (OverflowError, ValueError, OSError):  # a date Sigfox could send, Python can't show
        return f"{ms} ms after 1970"


class SigfoxModel(BaseModel):
    """Base of response models: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(
        extra="allow", populate_by_name=True, alias_generator=to_camel, frozen=False
    )


class MinRef(SigfoxModel):
    """The minimal `{id, name}` reference Sigfox embeds (minDeviceType, minContractInfo, ...)."""

    id: str | None = None
    name: str | None = None


class Certificate(SigfoxModel):
    id: str | None = None
    key: str | None = None


class Location(SigfoxModel):
    lat: float | None = None
    lng: float | None = None


class Token(SigfoxModel):
    state: TokenState | None = None
    detail_message: str | None = None
    end: int | None = Field(default=None, description="communication end, ms since epoch")
    free_messages: int | None = None
    free_messages_sent: int | None = None
    unsubscription_time: int | None = None

    @property
    def end_datetime(self) -> datetime | None:
        return ms_to_datetime(self.end)


class Device(SigfoxModel):
    id: str = ""  # optional in openapi.json: "" (unknown) rather than a crash
    name: str | None = None
    # repr=False keeps the PAC out of logs and tracebacks that print a Device.
    pac: str | None = Field(default=None, repr=False)
    state: DeviceState | None = None
    com_state: ComState | None = None
    token: Token | None = None
    device_type: MinRef | None = None
    contract: MinRef | None = None
    group: MinRef | None = None
    last_com: int | None = None
    sequence_number: int | None = None
    trash_sequence_number: int | None = None
    lqi: int | None = None
    activable: bool | None = None
    automatic_renewal: bool | None = None
    automatic_renewal_status: AutomaticRenewalStatus | None = None
    creation_time: int | None = None
    activation_time: int | None = None
    unsubscription_time: int | None = None
    location: Location | None = None
    last_computed_location: dict[str, Any] | None = None
    prototype: bool | None = None
    product_certificate: Certificate | None = None
    modem_certificate: Certificate | None = None
    satellite_capable: bool | None = None
    repeater: bool | None = None
    message_modulo: int | None = None
    created_by: str | None = None
    last_edition_time: int | None = None
    last_edited_by: str | None = None

    @property
    def token_state(self) -> TokenState | None:
        """None when the device has no token ("Token not consumed" in the portal)."""
        return self.token.state if self.token else None

    @property
    def token_end_datetime(self) -> datetime | None:
        return self.token.end_datetime if self.token else None

    @property
    def last_com_datetime(self) -> datetime | None:
        return ms_to_datetime(self.last_com)

    @property
    def creation_datetime(self) -> datetime | None:
        return ms_to_datetime(self.creation_time)

    @property
    def can_be_deleted(self) -> bool:
        """Sigfox deletes only devices whose token is Off Contract or that have no token."""
        return self.token is None or self.token.state == TokenState.OFF_CONTRACT

    @property
    def contract_id(self) -> str | None:
        """The contract the device's token came from (`device.contract`); None when unknown.
        Transfers are judged from this one, not from the device type's
        (docs/sigfox-semantics.md, Transfers)."""
        return self.contract.id if self.contract and self.contract.id else None

    @property
    def renewal_refused(self) -> bool:
        """Sigfox computed that the token will not be (or was not) renewed automatically.
        See docs/sigfox-semantics.md: NOT_ALLOWED and ENDED both mean no renewal is coming."""
        return self.automatic_renewal_status in (
            AutomaticRenewalStatus.NOT_ALLOWED, AutomaticRenewalStatus.ENDED
        )


class DeviceType(SigfoxModel):
    id: str = ""  # optional in openapi.json: "" (unknown) rather than a crash
    name: str | None = None
    description: str | None = None
    contract: MinRef | None = None
    contracts: list[MinRef] | None = None
    detached_contracts: list[MinRef] | None = None
    group: MinRef | None = None
    automatic_renewal: bool | None = None
    downlink_mode: int | None = None
    downlink_data_string: str | None = None
    payload_type: int | None = None
    payload_config: str | None = None
    keep_alive: int | None = None
    alert_email: str | None = None
    creation_time: int | None = None
    created_by: str | None = None
    last_edition_time: int | None = None
    last_edited_by: str | None = None

    @property
    def contract_ids(self) -> list[str]:
        """The contracts devices of this type take tokens from: `contracts[]` (the current
        field), plus the older single `contract` when it names another one. Never
        `detachedContracts`, which were associated "at some point, but are not anymore"."""
        refs = [*(self.contracts or []), *([self.contract] if self.contract else [])]
        ids: list[str] = []
        for ref in refs:
            if ref.id and ref.id not in ids:
                ids.append(ref.id)
        return ids


class ContractInfo(SigfoxModel):
    id: str = ""  # optional in openapi.json: "" (unknown) rather than a crash
    name: str | None = None
    contract_id: str | None = None
    order: MinRef | None = None
    group: MinRef | None = None
    max_tokens: int | None = Field(default=None, description="0 means unlimited")
    tokens_in_use: int | None = None
    tokens_used: int | None = None
    token_duration: int | None = Field(default=None, description="months, 0 = unlimited")
    start_time: int | None = None
    communication_end_time: int | None = Field(default=None, description="ms, 0 = no limit")
    activation_end_time: int | None = Field(default=None, description="ms, 0 = no limit")
    automatic_renewal: bool | None = None
    renewal_duration: int | None = None
    subscription_plan: int | None = None
    pricing_model: int | None = None
    timezone: str | None = None
    bidir: bool | None = None
    creation_time: int | None = None

    @property
    def unlimited_tokens(self) -> bool:
        return self.max_tokens == 0

    @property
    def tokens_left(self) -> int | None:
        """Tokens still available; None when unlimited (maxTokens 0).

        The description does not say whether `tokensUsed` (expired or revoked) counts against
        `maxTokens`; counting it is the reading that cannot approve a renewal onto a contract
        that has nothing to give (docs/sigfox-semantics.md). An absent `maxTokens` is unknown,
        read as 0 tokens left: nothing destructive rests on a number Sigfox did not give.
        """
        if self.max_tokens == 0:
            return None
        if self.max_tokens is None:
            return 0
        return max(self.max_tokens - (self.tokens_in_use or 0) - (self.tokens_used or 0), 0)

    @property
    def end_time(self) -> int | None:
        """When communication ends under this contract (ms); None when it has no limit."""
        return self.communication_end_time or None

    @property
    def activation_end(self) -> int | None:
        """After this (ms) the contract takes no new activations; None when it has no limit."""
        return self.activation_end_time or None

    def why_no_token(self, now_ms: float) -> str:
        """Why a device could not take a new token on this contract now ("" when it could)."""
        name = self.name or self.id
        left = self.tokens_left
        if left is not None and left <= 0:
            if self.max_tokens is None:
                return f"Sigfox does not say how many tokens contract {name} has"
            return (
                f"contract {name} has no tokens left ({self.tokens_in_use or 0} in use and "
                f"{self.tokens_used or 0} used, expired or revoked, of {self.max_tokens}; used "
                "tokens are counted against the maximum, the reading that cannot overspend)"
            )
        if self.start_time and self.start_time > now_ms:
            return f"contract {name} has not started yet (it starts {_day(self.start_time)})"
        if self.end_time is not None and self.end_time <= now_ms:
            return f"contract {name} ended on {_day(self.end_time)}"
        if self.activation_end is not None and self.activation_end <= now_ms:
            return (
                f"contract {name} takes no new activations since {_day(self.activation_end)}"
            )
        return ""

    @property
    def end_datetime(self) -> datetime | None:
        return ms_to_datetime(self.end_time)

    @property
    def start_datetime(self) -> datetime | None:
        return ms_to_datetime(self.start_time)


class Group(SigfoxModel):
    id: str
    name: str | None = None
    description: str | None = None
    type: int | None = None
    timezone: str | None = None
    name_ci: str | None = Field(default=None, alias="nameCI")
    path: list[MinRef] | None = None
    leaf: bool | None = None
    creation_time: int | None = None
    created_by: str | None = None


class Callback(SigfoxModel, CallbackDelivery):
    """A device type's callback (definitions callback, urlCallback, batchUrlCallback, ...)."""

    id: str | None = None
    channel: str | None = None
    callback_type: CallbackType | None = None
    callback_subtype: CallbackSubtype | None = None
    enabled: bool | None = None
    dead: bool | None = None
    http_method: str | None = None
    downlink_hook: bool | None = None

    def to_create(self) -> CallbackCreate:
        """A creation body reproducing this callback on another device type."""
        fields = set(CallbackCreate.model_fields)
        data = {k: v for k, v in self.model_dump().items() if k in fields and v is not None}
        return CallbackCreate.model_validate(data)


class Message(SigfoxModel):
    device: MinRef | None = None
    time: int | None = None
    data: str | None = None
    ack_required: bool | None = None
    lqi: int | None = None
    lqi_repeaters: int | None = None
    seq_number: int | None = None
    nb_frames: int | None = None
    computed_location: list[dict[str, Any]] | None = None
    rinfos: list[dict[str, Any]] | None = None

    @property
    def sent_at(self) -> datetime | None:
        return ms_to_datetime(self.time)


