"""A simulated Sigfox backend speaking API v2, for tests and the demo.

- `backend.World`: the state and the Sigfox rules (tokens, PACs, deletes, transfers, jobs);
- `fleet_generator.build_fleet`: a realistic fleet from a seed;
- `server.SimulatorServer`: the HTTP server in a background thread (tests);
- `server.run_simulator`: the same in the foreground (`sigfox-bot simulator`).

Behaviour where openapi.json leaves room (each module says more):
- lists are sorted by id; `paging.next` is absolute and carries an opaque `pageId` cursor (the
  last id shown) that works at any depth; `offset` above 40,000 answers 400 with a field error;
- refused DELETE (token Valid or Invalid) answers 403 `{"message"}` (the spec lists 400, 403 and
  404 for DELETE); creation of a held id answers 409 `{"message"}`; a PAC that does not match
  the id's current PAC answers 400 with an error on field `pac`;
- creation and transfer jobs: POST answers 200 `{"total", "jobId"}`, status at
  GET /devices/bulk/{jobId} (`registrationJobStatus`); restart and unsubscribe: POST answers
  201 `{"jobId"}`, status at GET /devices/bulk/{restart|unsubscribe}/{jobId} (`actionJob`);
  jobs stay `jobDone: false` until `job_delay` real seconds pass or the clock is advanced;
- a device's `contract` is its token's contract, else its device type's; messages of an
  Off Contract device are recorded but not forwarded to callbacks;
- GET /contract-infos/{id}/devices lists "devices having a token on the specified contract":
  those with a `token` (Valid, Invalid or Off Contract) taken on it, never one without a token;
- rate limits (ratelimit.py) and fault matching (control.py) are documented where defined.
"""

from sigfox.simulator.backend import World
from sigfox.simulator.clock import SimClock
from sigfox.simulator.fleet_generator import FleetLayout, build_fleet
from sigfox.simulator.server import SimulatorApp, SimulatorServer, run_simulator

__all__ = [
    "FleetLayout",
    "SimClock",
    "SimulatorApp",
    "SimulatorServer",
    "World",
    "build_fleet",
    "run_simulator",
]
