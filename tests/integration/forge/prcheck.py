"""A `check_pull_request` for the tests, built from the real parts: files read from a real git
repository at the head and base commits, compiled with `reconciler.spec.validate_file`, planned
as "what changes between base and head" by spec hash, previews chosen by the base commit's repo
config (`reconciler.forge.trust`), as the daemon's does. (The daemon's own, from the
compile/plan packages, replaces it in production.)"""

from __future__ import annotations

from collections.abc import Callable

from reconciler import repo_config as rc
from reconciler.errors import first_line
from reconciler.forge import PrCheckResult, PreviewOp, PreviewPolicy
from reconciler.model import OpKey, spec_hash
from reconciler.spec import Resolver, check_event_refs, validate_file
from reconciler.spec.validate import FileResult
from tests.infra.git_server import GitRepo


def _files(repo: GitRepo, sha: str) -> dict[str, bytes]:
    names = repo.git("ls-tree", "-r", "--name-only", sha).splitlines()
    out = {}
    for name in names:
        if name.endswith((".yaml", ".yml")) and name != rc.FILENAME:
            out[name] = repo.git("show", f"{sha}:{name}").encode() + b"\n"
    return out


def _compile(repo: GitRepo, sha: str) -> tuple[list[FileResult], rc.RepoFileConfig]:
    files = _files(repo, sha)
    resolver = Resolver(read=files.get)
    results = [validate_file(path, data, resolver, require_signature=True) for path, data in sorted(files.items())]
    check_event_refs(results)
    config_text = repo.git("ls-tree", "--name-only", sha, rc.FILENAME)
    config = rc.parse(repo.git("show", f"{sha}:{rc.FILENAME}").encode() if config_text else None)
    assert isinstance(config, rc.RepoFileConfig)
    return [r for r in results if r.skipped is None], config


def checker(git_repo: GitRepo) -> Callable[[str, str, str | None], PrCheckResult]:
    def check(repo: str, head_sha: str, base_sha: str | None) -> PrCheckResult:
        head, _ = _compile(git_repo, head_sha)
        base, base_config = _compile(git_repo, base_sha or git_repo.head("main"))
        policy = PreviewPolicy.of(base_config)
        errors = [e for r in head for e in r.errors]
        hashes = {
            side: {r.path: spec_hash(r.checked.effective) for r in results if r.checked}
            for side, results in (("head", head), ("base", base))
        }
        lines = []
        for path in sorted(set(hashes["head"]) | set(hashes["base"])):
            old, new = hashes["base"].get(path), hashes["head"].get(path)
            if old is None:
                lines.append(f"+ create {path}")
            elif new is None:
                lines.append(f"- remove {path}" if path not in {r.path for r in head} else f"! keep {path} (invalid)")
            elif old != new:
                lines.append(f"~ update {path} ({old[:8]} -> {new[:8]})")
        previews = tuple(
            PreviewOp(
                op=OpKey(repo, r.path, r.op_name),
                kind=str(r.checked.effective["run"]["kind"]),
                spec_hash=spec_hash(r.checked.effective),
                effective=r.checked.effective,
            )
            for r in head
            if r.checked and policy.names(r.op_name)
        )
        return PrCheckResult(
            valid=not errors,
            first_error=first_line(errors),
            plan_text="\n".join(lines) or "no changes",
            previews=previews,
            policy=policy,
        )

    return check
