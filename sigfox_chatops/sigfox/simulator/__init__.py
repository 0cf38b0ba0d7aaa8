"""A simulated Sigfox backend speaking API v2, for tests and the demo.

- `world.World`: the state and the Sigfox rules (tokens, PACs, deletes, transfers, jobs);
- `fleet.build_fleet`: a realistic fleet from a seed;
- `server.SimulatorServer`: the HTTP server in a background thread (tests);
- `server.run_simulator`: the same in the foreground (`sigfox-bot simulator`).
"""

from sigfox_chatops.sigfox.simulator.clock import SimClock
from sigfox_chatops.sigfox.simulator.fleet import FleetLayout, build_fleet
from sigfox_chatops.sigfox.simulator.server import SimulatorApp, SimulatorServer, run_simulator
from sigfox_chatops.sigfox.simulator.world import World

__all__ = [
    "FleetLayout",
    "SimClock",
    "SimulatorApp",
    "SimulatorServer",
    "World",
    "build_fleet",
    "run_simulator",
]
