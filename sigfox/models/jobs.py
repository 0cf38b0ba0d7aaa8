"""Bulk jobs of the Sigfox API v2: their kinds, the two status definitions the spec gives
(`registrationJobStatus`, `actionJob`), and one `BulkJob` shape for callers."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import BaseModel, Field

from sigfox.models.codes import JobErrorType
from sigfox.models.resources import SigfoxModel


class JobKind(StrEnum):
    """Kinds of asynchronous device jobs, each polled at its own status endpoint."""

    CREATE = "create"  # POST /devices/bulk -> GET /devices/bulk/{jobId}
    EDIT = "edit"  # PUT /devices/bulk -> GET /devices/bulk/{jobId}
    TRANSFER = "transfer"  # POST /devices/bulk/transfer -> GET /devices/bulk/{jobId}
    RESTART = "restart"  # POST /devices/bulk/restart -> GET /devices/bulk/restart/{jobId}
    UNSUBSCRIBE = "unsubscribe"  # POST /devices/bulk/unsubscribe -> .../unsubscribe/{jobId}


class JobError(SigfoxModel):
    entity: str | None = None
    message: str | None = None
    type: JobErrorType | None = None


class RegistrationProgress(SigfoxModel):
    errors: list[JobError] | None = None
    success: int | None = None


class RegistrationJobStatus(SigfoxModel):
    """Definition `registrationJobStatus`: status of create, edit and transfer jobs."""

    job_done: bool | None = None
    total: int | None = None
    status: RegistrationProgress | None = None


class ActionProgress(SigfoxModel):
    total: int | None = None
    nb_success: int | None = None
    nb_errors: int | None = None
    errors: list[JobError] | None = None


class ActionJobStatus(SigfoxModel):
    """Definition `actionJob`: status of restart and unsubscribe jobs."""

    job_done: bool | None = None
    status: ActionProgress | None = None


class BulkJob(BaseModel):
    """One shape for every job kind, so callers need not know which definition answered."""

    kind: JobKind
    job_id: str
    done: bool
    total: int | None = None
    succeeded: int | None = None
    failed: int | None = None
    errors: list[JobError] = Field(default_factory=list)

    @classmethod
    def from_registration(cls, kind: JobKind, job_id: str, raw: RegistrationJobStatus) -> Self:
        errors = (raw.status.errors if raw.status else None) or []
        return cls(
            kind=kind,
            job_id=job_id,
            done=bool(raw.job_done),
            total=raw.total,
            succeeded=raw.status.success if raw.status else None,
            failed=len(errors) if raw.status else None,
            errors=errors,
        )

    @classmethod
    def from_action(cls, kind: JobKind, job_id: str, raw: ActionJobStatus) -> Self:
        progress = raw.status or ActionProgress()
        return cls(
            kind=kind,
            job_id=job_id,
            done=bool(raw.job_done),
            total=progress.total,
            succeeded=progress.nb_success,
            failed=progress.nb_errors,
            errors=progress.errors or [],
        )
