"""The bulk jobs of the simulated API: queued when asked, run after `job_delay` real seconds
or at the next clock advance, whichever comes first, item by item through the backend's own
rules, so a job's outcome per device is what the single-device call would have given."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sigfox.simulator.api_errors import ApiError, not_found
from sigfox.simulator.entities import Job
from sigfox.simulator.request_bodies import CREATE_FIELDS, is_int, job_size

if TYPE_CHECKING:
    from sigfox.simulator.backend import World


class JobQueue:
    """The jobs of one `World`, guarded by its lock."""

    def __init__(self, world: World, job_delay: float) -> None:
        self.world = world
        self.job_delay = job_delay
        self.jobs: dict[str, Job] = {}
        self._timers: list[threading.Timer] = []

    def start(self, kind: str, payload: Any) -> Job:
        """Validate a bulk request and queue it; it runs after `job_delay` real seconds or at
        the next clock advance, whichever comes first."""
        total = job_size(kind, payload, self.world.device_types)
        with self.world.lock:
            job = Job(
                id=self.world.new_object_id(), kind=kind, payload=payload, total=total,
                created_real=time.monotonic(), created_virtual_ms=self.world.now_ms(),
            )
            self.jobs[job.id] = job
        timer = threading.Timer(self.job_delay, self.run_due)
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()]
        self._timers.append(timer)
        timer.start()
        return job

    def status(self, job_id: str, kind: str) -> Job:
        self.run_due()
        with self.world.lock:
            job = self.jobs.get(job_id)
            if job is None or not _same_job_family(job.kind, kind):
                raise not_found("Job", job_id)
            return job

    def run_due(self, force: bool = False) -> None:
        with self.world.lock:
            due_before = time.monotonic() - self.job_delay
            for job in self.jobs.values():
                if not job.done and (force or job.created_real <= due_before):
                    self._run(job)

    def stop(self) -> None:
        """Cancel job timers (the server is shutting down)."""
        for timer in self._timers:
            timer.cancel()

    def _run(self, job: Job) -> None:
        handlers: dict[str, Callable[[dict[str, Any], Any], str]] = {
            "create": self._create_one,
            "transfer": self._transfer_one,
            "restart": self._restart_one,
            "unsubscribe": self._unsubscribe_one,
        }
        handler = handlers[job.kind]
        for item in job.payload["data"]:
            entity = item if isinstance(item, str) else item["id"]
            try:
                outcome = handler(job.payload, item)
            except ApiError as exc:
                message = _entity_message(exc)
                job.errors.append({"entity": entity.upper(), "message": message, "type": 0})
                job.results.append({"id": entity.upper(), "error": message})
            else:
                job.success += 1
                job.results.append({"id": entity.upper(), "outcome": outcome})
        job.done = True

    def _create_one(self, payload: dict[str, Any], item: dict[str, Any]) -> str:
        body = {k: v for k, v in item.items() if k in CREATE_FIELDS}
        body["deviceTypeId"] = payload["deviceTypeId"]
        body.setdefault("name", f"{payload.get('prefix', '')}{item['id']}")
        body.setdefault("pac", "")
        for shared in ("prototype", "productCertificate"):
            if shared in payload:
                body.setdefault(shared, payload[shared])
        self.world.create_device(body)
        return "created"

    def _transfer_one(self, payload: dict[str, Any], item: dict[str, Any]) -> str:
        device = self.world.device(item["id"])
        return self.world.transfer(device, self.world.device_types[payload["deviceTypeId"]], item)

    def _restart_one(self, payload: dict[str, Any], item: str) -> str:
        return self.world.restart(self.world.device(item))

    def _unsubscribe_one(self, payload: dict[str, Any], item: dict[str, Any]) -> str:
        device = self.world.device(item["id"])
        when = item.get("unsubscriptionTime")
        device.unsubscription_ms = int(when) if is_int(when) else self.world.now_ms()
        return "unsubscribed"


def _entity_message(error: ApiError) -> str:
    """A job error's `message` (jobError: "the message of the error" of that entity, type 0
    ENTITY): what the single call would have said about this device. A 400's own message is
    the generic "Bad request"; its reason is in its field errors."""
    reasons = [e["message"] for e in error.errors if e.get("message")]
    return "; ".join(reasons) if reasons else error.message


def _same_job_family(job_kind: str, asked: str) -> bool:
    """Creation and transfer status both live at /devices/bulk/{jobId} (registrationJobStatus)."""
    if asked == "registration":
        return job_kind in ("create", "transfer")
    return job_kind == asked
