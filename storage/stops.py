"""The SQL of a stopped job (commands/stops.py): which device steps are untouched at Sigfox,
and moving them to `stopped`, inside a transaction the caller holds (storage/store.py when a
person stops the job, storage/intents.py when a call is found not to have landed after it)."""

from __future__ import annotations

from typing import Any

# Step states the stop reads and writes (the names of commands.states.StepState).
PENDING = "pending"
STOPPED = "stopped"
# A stop asked for a running job is kept in its params: {"by", "at", ...}.
STOP_ASKED = "stop_asked"
# A step on which nothing of its job took effect at Sigfox or still could: pending, or
# deleting with no call of the job written ahead for it but those verified not to have landed
# (a DELETE is always written ahead, and `Intents.open` writes none for a stopped device, so a
# worker between its claim and its call sends nothing once the device is stopped).
UNTOUCHED = (
    "(workflow_devices.state = 'pending' OR (workflow_devices.state = 'deleting' "
    "AND NOT EXISTS (SELECT 1 FROM intents i WHERE i.workflow_id = workflow_devices.workflow_id "
    "AND i.device_id = workflow_devices.device_id AND i.state != 'not_landed')))")
# The step's job was stopped.
STOPPED_JOB = (f"EXISTS (SELECT 1 FROM workflows w WHERE w.id = workflow_devices.workflow_id "
               f"AND json_extract(w.params, '$.{STOP_ASKED}') IS NOT NULL)")


def job_stopped(db: Any, workflow_id: int) -> bool:
    row = db.execute(f"SELECT 1 FROM workflows WHERE id = ? "
                     f"AND json_extract(params, '$.{STOP_ASKED}') IS NOT NULL",
                     [workflow_id]).fetchone()
    return row is not None


def stop_untouched_steps(db: Any, workflow_id: int, now: float) -> list[str]:
    """Move the job's untouched steps to `stopped` and free their devices for other jobs."""
    rows = db.execute(
        "UPDATE workflow_devices SET state = ?, next_run = 0, updated_at = ?, "
        f"version = version + 1 WHERE workflow_id = ? AND {UNTOUCHED} RETURNING device_id",
        [STOPPED, now, workflow_id]).fetchall()
    device_ids = sorted(str(row[0]) for row in rows)
    for device_id in device_ids:
        db.execute("DELETE FROM device_locks WHERE device_id = ? AND workflow_id = ?",
                   [device_id, workflow_id])
    return device_ids
