"""Who is in which Slack user group, for the policy's `Actor(user_id, group_ids)`.

Only the user groups the configuration names can matter to a decision, so only those are asked
about (`usergroups.users.list`, scope usergroups:read; listing every group of a large workspace
with `usergroups.list` would cost more and decide nothing more). Memberships are cached briefly:
someone removed from the approvers' group loses the right within `ttl` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from commands.config import BotConfig
from commands.policy import Actor

log = logging.getLogger(__name__)

DEFAULT_TTL = 60.0


def configured_groups(config: BotConfig) -> frozenset[str]:
    """User-group ids (S...) named anywhere in [policy]."""
    policy = config.policy
    names = [*policy.requesters, *policy.approvers, *policy.escalation_approvers]
    for override in policy.operations.values():
        names += [*(override.requesters or ()), *(override.approvers or ())]
    return frozenset(n for n in names if n.startswith("S"))


class GroupResolver:
    """Resolves a user's groups, caching memberships for `ttl` seconds."""

    def __init__(self, client: WebClient, config: BotConfig | Callable[[], BotConfig], *,
                 ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._config = config
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._members: dict[str, tuple[float, frozenset[str]]] = {}

    def actor(self, user_id: str) -> Actor:
        config = self._config() if callable(self._config) else self._config
        groups = frozenset(g for g in configured_groups(config) if user_id in self._of(g))
        return Actor(user_id, groups)

    def _of(self, group_id: str) -> frozenset[str]:
        now = self._clock()
        with self._lock:
            cached = self._members.get(group_id)
        if cached and now - cached[0] < self._ttl:
            return cached[1]
        members = self._fetch(group_id)
        if members is None:  # Slack unreachable: the last known answer beats denying everyone
            return cached[1] if cached else frozenset()
        with self._lock:
            self._members[group_id] = (now, members)
        return members

    def _fetch(self, group_id: str) -> frozenset[str] | None:
        try:
            answer = self._client.usergroups_users_list(usergroup=group_id)
        except SlackApiError as error:
            log.warning("usergroups.users.list %s: %s", group_id, error.response.get("error"))
            # A group that does not exist has no members: a definite answer, cached.
            return frozenset() if error.response.get("error") == "no_such_subteam" else None
        except SlackClientError as error:
            log.warning("usergroups.users.list %s: %s", group_id, type(error).__name__)
            return None
        return frozenset(answer.get("users") or [])
