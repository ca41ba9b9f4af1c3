"""Who local runs run as, and what of the run directory that user may touch.

A local run executes whatever a commit of a watched repository says. When the daemon runs as
root, that must not be root: runs switch to an unprivileged user (`local.run_as`, default
`nobody`), so they cannot read the daemon's token files (mode 0600), its database or its git
caches, nor signal or trace the daemon. When the daemon runs as another user, runs share that
user (the README says so): switching users needs root.

The run directory stays the backend's: it is owned by the daemon and only traversable by
others (0711), so the run cannot rewrite the records the backend trusts (state, exit codes) or
swap them for symbolic links the daemon would then follow. The run owns exactly three entries
of it: `home/` (HOME and the default working dir), `artifacts/` and the outputs file. Those are
entries of a directory the run cannot write, so they cannot be swapped either; the backend
never follows anything inside them.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from reconciler.backends.local.launch import RunPaths


@dataclass(frozen=True)
class RunUser:
    name: str
    uid: int
    gid: int


def run_user(name: str | None) -> RunUser | None:
    """The user local runs switch to, or None when they run as the daemon's own user.

    Only a root daemon switches (nobody else can); a `name` that resolves to root means the
    operator chose to run everything as root.
    """
    if os.geteuid() != 0 or not name:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ValueError(f"local.run_as: there is no user named {name!r} on this machine") from None
    if entry.pw_uid == 0:
        return None
    return RunUser(name, entry.pw_uid, entry.pw_gid)


def _traversable(info: os.stat_result, user: RunUser) -> bool:
    if info.st_uid == user.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == user.gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def make_reachable(state_dir: Path, user: RunUser) -> None:
    """Let `user` reach its runs' directories under `state_dir`, or say what stops it.

    `state_dir` and the data dir holding it are the daemon's: they become traversable (not
    listable) by others. Any other ancestor must already be; it is never changed here.
    """
    state_dir = state_dir.resolve()
    own = os.geteuid()
    for mine in (state_dir, state_dir.parent):
        info = mine.stat()
        if info.st_uid == own and not _traversable(info, user):
            os.chmod(mine, stat.S_IMODE(info.st_mode) | stat.S_IXOTH)
    for ancestor in [state_dir, *state_dir.parents]:
        if not _traversable(ancestor.stat(), user):
            raise ValueError(
                f"local runs run as {user.name!r}, who cannot reach {ancestor}: make it traversable "
                f"(chmod o+x {ancestor}) or put data_dir elsewhere"
            )


def give_to(paths: RunPaths, user: RunUser) -> None:
    """Before an attempt starts: the run dir stays ours (0711), its own parts become `user`'s.

    Idempotent. Only entries of the run directory are touched (the run cannot swap those), and
    symbolic links are never followed.
    """
    os.chmod(paths.run_dir, 0o711)
    paths.artifacts.mkdir(exist_ok=True)
    if paths.artifacts.stat(follow_symlinks=False).st_uid != user.uid:
        # Not the run's yet, so nothing in it is the run's doing: prepare what is inside once.
        paths.run_outputs.mkdir(exist_ok=True)
        os.chown(paths.run_outputs, user.uid, user.gid, follow_symlinks=False)
    for directory in (paths.home, paths.artifacts):
        directory.mkdir(exist_ok=True)
        os.chown(directory, user.uid, user.gid, follow_symlinks=False)
        os.chmod(directory, 0o700)
    fd = os.open(paths.outputs_file, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.fchown(fd, user.uid, user.gid)
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


__all__ = ["RunUser", "give_to", "make_reachable", "run_user"]
