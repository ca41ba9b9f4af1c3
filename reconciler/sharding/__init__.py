"""Replicas that share the repos: leases, ownership by rendezvous hashing, the fence, hand-offs.

`Shard` keeps this replica's share (membership renewed every third of `lease_seconds`, the repo
leases rendezvous gives it) over a `LeaseStore`: `kubernetes.KubernetesLeases` (coordination.k8s.io/v1
Leases; imported from its module, so a daemon without it never loads the Kubernetes client) or
`DatabaseLeases` (rows in the tracking PostgreSQL). `Shard.check` is the fence the
applier asks before anything that starts something (`NotOwner` when the repo is not this
replica's). `HandoffPump` takes the webhook events and requests other replicas received for the
repos this one owns. The daemon's wiring (`reconciler.shard_wiring`) plugs them in.
"""

from __future__ import annotations

import os
import secrets
import socket

from reconciler.sharding.database import DatabaseLeases
from reconciler.sharding.handoffs import MEMBERS, HandoffPump
from reconciler.sharding.rendezvous import assign, owner
from reconciler.sharding.shard import VALIDITY, LeaseStore, NotOwner, Shard


def default_identity() -> str:
    """The pod's name (Kubernetes sets HOSTNAME to it), else `<host>-<pid>`."""
    return os.environ.get("HOSTNAME") or f"{socket.gethostname()}-{os.getpid()}"


def holder_of(identity: str) -> str:
    """What this process's leases name: its identity and a token of its own, so a restarted
    process (same identity) never inherits leases it cannot know it holds."""
    return f"{identity}#{secrets.token_hex(4)}"


__all__ = [
    "MEMBERS",
    "VALIDITY",
    "DatabaseLeases",
    "HandoffPump",
    "LeaseStore",
    "NotOwner",
    "Shard",
    "assign",
    "default_identity",
    "holder_of",
    "owner",
]
