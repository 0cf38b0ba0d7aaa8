"""The core of the bot, free of Slack: what an operator may ask, and the work it starts.

It talks to the outside only through the ports in `ports.py` (a Sigfox API, a notifier, a
clock) and to its database through `storage/`. What it offers:

- `Core` (workflows.py): requests, approvals and the durable renew / delete / transfer /
  restart / unsubscribe workflows, advanced by `tick`; `Outcome` (outcome.py) is its answer to
  a request. It is a facade over parts it builds: `WorkflowEngine` (engine.py), `StepRunner`
  (steps.py) and `BulkJobs` (bulk_jobs.py), `ApprovalRounds` (approvals.py), `PendingCancels`
  (cancels.py), `WriteAhead` (writeahead.py), `Bookkeeper` (bookkeeping.py);
- `ReadModels`, `JobSummary`, `ApprovalRequest` (read_models.py): what the edges read;
- `parse_command`, `Command`, `CommandError`, `help_text` (grammar.py): `/sigfox` text to a
  typed command or to an error that says what to type instead;
- `Policy`, `Actor`, `Operation` (policy.py): who may ask for what and who may approve it;
- `BotConfig`, `load_config`, `parse_config`, `ConfigError` (config.py): the TOML file;
- `AlertService` (alerting/): fleet scans, alert rules, digests and their delivery;
- `SigfoxApi`, `Notifier`, `Progress`, `ProgressKind`, `Target`, `Clock`, `SystemClock`,
  `ManualClock` (ports.py): the seams;
- `Refusal` (preflight.py): a request refused before anything changed;
- `start_scheduler` (runtime.py); `configure_logging`, `redact` (logs.py); the `metrics` and
  `human` (how dates, durations and people are written) modules.

The names load on first use, so importing one module (the CLI's logging, say) does not load
the whole core.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from commands.alerting import AlertService
    from commands.config import BotConfig, ConfigError, load_config, parse_config
    from commands.grammar import Command, CommandError, help_text, parse_command
    from commands.logs import configure_logging, redact
    from commands.policy import Actor, Operation, Policy
    from commands.ports import (
        Clock,
        ManualClock,
        Notifier,
        Progress,
        ProgressKind,
        SigfoxApi,
        SystemClock,
        Target,
    )
    from commands.preflight import Refusal
    from commands.read_models import ApprovalRequest, JobSummary, ReadModels
    from commands.runtime import start_scheduler
    from commands.workflows import Core, Outcome

__all__ = [
    "Actor",
    "AlertService",
    "ApprovalRequest",
    "BotConfig",
    "Clock",
    "Command",
    "CommandError",
    "ConfigError",
    "Core",
    "JobSummary",
    "ManualClock",
    "Notifier",
    "Operation",
    "Outcome",
    "Policy",
    "Progress",
    "ProgressKind",
    "ReadModels",
    "Refusal",
    "SigfoxApi",
    "SystemClock",
    "Target",
    "configure_logging",
    "help_text",
    "load_config",
    "parse_command",
    "parse_config",
    "redact",
    "start_scheduler",
]

_HOMES = {
    "alerting": ["AlertService"],
    "config": ["BotConfig", "ConfigError", "load_config", "parse_config"],
    "grammar": ["Command", "CommandError", "help_text", "parse_command"],
    "logs": ["configure_logging", "redact"],
    "policy": ["Actor", "Operation", "Policy"],
    "ports": ["Clock", "ManualClock", "Notifier", "Progress", "ProgressKind", "SigfoxApi",
              "SystemClock", "Target"],
    "preflight": ["Refusal"],
    "read_models": ["ApprovalRequest", "JobSummary", "ReadModels"],
    "runtime": ["start_scheduler"],
    "workflows": ["Core", "Outcome"],
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> object:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
