"""`reconciler run` (the daemon) and `reconciler sync` (reconcile each repo once and exit)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from reconciler.commands.settings import ConfigOption, settings_or_exit
from reconciler.config import Settings

if TYPE_CHECKING:
    from reconciler.backends import Backend
    from reconciler.daemon import Daemon

EXIT_OK, EXIT_NOT_CONVERGED, EXIT_USAGE = 0, 1, 2


def kube_api_client(settings: Settings) -> Any:
    """An API client for the configured cluster (in-cluster service account, or a kubeconfig)."""
    import kubernetes

    if settings.kubernetes.in_cluster:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
        return kubernetes.client.ApiClient()
    return kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(settings.kubernetes.kubeconfig) if settings.kubernetes.kubeconfig else None,
        context=settings.kubernetes.context,
    )


def build_backend(settings: Settings, *, instance: str = "") -> Backend:
    """The configured backend; `instance` (the database's daemon identity) marks what it makes."""
    if settings.backend == "kubernetes":
        from reconciler.backends.kubernetes import KubernetesBackend
        from reconciler.render import RenderOptions

        api = kube_api_client(settings)
        return KubernetesBackend(
            api,
            namespace=settings.kubernetes.all_namespaces,
            force_conflicts=settings.kubernetes.force_conflicts,
            render_options=RenderOptions(job_ttl_seconds=settings.kubernetes.job_ttl_seconds),
            instance=instance,
            # Runs' logs outlive their pods here (per daemon, as local runs are).
            log_dir=Path(settings.data_dir) / "k8s-logs" / (instance or "default"),
        )
    from reconciler.backends.local import LocalBackend, run_user

    user = run_user(settings.local.run_as)
    if user is None and os.geteuid() != 0 and "run_as" in settings.local.model_fields_set:
        logging.getLogger("reconciler").warning(
            "local.run_as is ignored: the daemon is not root, so local runs share its user"
        )
    return LocalBackend.in_data_dir(settings.data_dir, instance=instance, run_as=user)


@contextlib.contextmanager
def private_files() -> Iterator[None]:
    """What the daemon writes (database, git caches, run records) is its own: other users, and
    local runs switched to another user, cannot read it (runs get their own parts, users.py).
    The umask is put back after, which matters when a command runs in-process (tests)."""
    umask = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(umask)


def build_daemon(settings: Settings, *, timer: bool = True) -> Daemon:
    """Every adapter, wired (`reconciler.wiring`), over the configured database and backend."""
    from reconciler.logs import register_secret
    from reconciler.secrets import SecretMissing, file_mode_problem, read_secret, read_secret_file
    from reconciler.tracking import DatabaseNotReady, Store, ensure_ready
    from reconciler.wiring import build_daemon as wire

    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    try:
        ensure_ready(settings.database)
    except DatabaseNotReady as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(EXIT_NOT_CONVERGED) from None
    # Every secret is known to the log redactor from the start, and a secret file other users
    # can read stops the start (reconciler.secrets); a missing one is reported by its user.
    for path, env in secret_sources(settings):
        if env is not None:
            register_secret(os.environ.get(env, "").strip())
        if path is None:
            continue
        problem = file_mode_problem(path)
        if problem:
            typer.echo(f"error: secret file refused: {problem}", err=True)
            raise typer.Exit(EXIT_USAGE)
        with contextlib.suppress(SecretMissing):
            read_secret_file(path)
    try:
        # A configured API token that cannot be read must stop the start, not open the API.
        read_secret(settings.server.token_file, settings.server.token_env, "server token")
    except SecretMissing as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    store = Store.open(settings.database)
    try:
        backend = build_backend(settings, instance=store.instance_id(datetime.now(UTC)))
    except ValueError as e:  # local.run_as cannot be used
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    # Leases get a client of their own: their calls never wait behind the backend's.
    sharded = settings.sharding is not None and settings.sharding.mode == "kubernetes"
    return wire(settings, store, backend, timer=timer, kube_api=kube_api_client(settings) if sharded else None)


def secret_sources(settings: Settings) -> list[tuple[Path | None, str | None]]:
    """(file, environment variable) of every secret the settings name."""
    sources = [(settings.server.token_file, settings.server.token_env)]
    for repo in settings.repos:
        sources.append((repo.token_file, repo.token_env))
        if repo.forge is not None:
            sources.append((repo.forge.token_file, repo.forge.token_env))
            sources.append((repo.forge.webhook_secret_file, repo.forge.webhook_secret_env))
    return [(path, env) for path, env in sources if path is not None or env is not None]


def run(config: ConfigOption = None) -> None:
    """Run the daemon: poll (and receive webhooks for) each repo, apply changes, until SIGTERM."""
    from reconciler.logs import setup_logging

    settings = settings_or_exit(config)
    setup_logging(settings.log_level, settings.log_format)
    with private_files():
        daemon = build_daemon(settings)
        daemon.run_forever()


def sync(config: ConfigOption = None) -> None:
    """Reconcile each configured repo once and exit: 0 converged, 1 invalid files or failed actions."""
    import logging

    from reconciler.logs import setup_logging

    settings = settings_or_exit(config)
    if settings.sharding is not None:
        # A pass outside the replicas' leases would act on repos they own.
        typer.echo(
            "error: reconciler sync does not run with sharding: the replicas own the repos "
            "(ask one of them: POST /api/repos/{repo}/sync)",
            err=True,
        )
        raise typer.Exit(EXIT_USAGE)
    setup_logging(settings.log_level, settings.log_format)
    converged = True
    with private_files():
        daemon = build_daemon(settings, timer=False)
        log = logging.getLogger("reconciler")
        try:
            # Runs a crash left recorded but not started are started first, as the daemon does.
            daemon.resume()
            for name in daemon.repos:
                try:
                    result = daemon.reconcile_repo(name)
                except Exception as e:
                    log.error("reconcile failed: %s", e, extra={"repo": name})
                    converged = False
                    continue
                actions = {k: v for k, v in result.actions.items() if k != "noop"}
                typer.echo(
                    f"{name}: commit {(result.commit or '')[:12]} actions {actions or 'none'}"
                    + (f" ({result.skipped})" if result.skipped else "")
                )
                for error in result.invalid:
                    typer.echo(f"  ! {error}")
                for what, why in result.applied.failures:
                    typer.echo(f"  ✗ {what}: {why}")
                converged = converged and result.converged
        finally:
            daemon.close_without_serving()
    raise typer.Exit(EXIT_OK if converged else EXIT_NOT_CONVERGED)
