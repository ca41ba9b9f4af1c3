"""Fetch the forges' published API descriptions and cut them down to the operations we use.

The forge test server validates every request against the provider's own description, so a
client that sends what GitHub or Gitea would reject fails here first. The full descriptions are
too big to commit (GitHub's is 13 MB), so this script fetches them by pinned version from package
registries into a per-machine cache and keeps only the operations listed in ``OPERATIONS`` plus
every component they reference:

- GitHub: ``api.github.com.json`` from the npm package ``@octokit/openapi`` (``npm pack``).
- Gitea: ``templates/swagger/v1_openapi3_json.tmpl`` from the Go module ``code.gitea.io/gitea``
  (``go mod download``), Gitea's own OpenAPI 3 rendering of its swagger.
- GitLab publishes its OpenAPI description only in its source repository, through no package
  registry, so ``openapi/gitlab-v4-minimal.yaml`` beside this file is written by hand from GitLab's
  REST API documentation for the few endpoints we call. It is the one description here that is ours.

Run ``python -m tests.infra.openapi_assets`` (``make test-assets`` does); it is a no-op when the
cache is current. The cache lives in ``$RECONCILER_TEST_CACHE`` or ``~/.cache/polyaxon-reconciler``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

GITHUB_NPM_PACKAGE = "@octokit/openapi"
GITHUB_NPM_VERSION = "23.0.2"
GITEA_GO_MODULE = "code.gitea.io/gitea"
GITEA_GO_VERSION = "v1.27.3"
GITLAB_MINIMAL = Path(__file__).with_name("openapi") / "gitlab-v4-minimal.yaml"

# Requests are presented to the validator as if sent to this server, whatever port the test
# server listens on; the provider's base path is stripped before validation.
SPEC_SERVER = "http://forge.invalid"

# (method, path template) of every endpoint the reconciler talks to, per provider.
OPERATIONS: dict[str, list[tuple[str, str]]] = {
    "github": [
        ("post", "/repos/{owner}/{repo}/statuses/{sha}"),
        ("get", "/repos/{owner}/{repo}/commits/{ref}/statuses"),
        ("get", "/repos/{owner}/{repo}/commits/{ref}/status"),
        ("get", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
        ("post", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
        ("patch", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
        ("get", "/repos/{owner}/{repo}/pulls"),
        ("get", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ],
    "gitea": [
        ("post", "/repos/{owner}/{repo}/statuses/{sha}"),
        ("get", "/repos/{owner}/{repo}/statuses/{sha}"),
        ("get", "/repos/{owner}/{repo}/commits/{ref}/statuses"),
        ("get", "/repos/{owner}/{repo}/issues/{index}/comments"),
        ("post", "/repos/{owner}/{repo}/issues/{index}/comments"),
        ("patch", "/repos/{owner}/{repo}/issues/comments/{id}"),
        ("get", "/repos/{owner}/{repo}/pulls"),
        ("get", "/repos/{owner}/{repo}/pulls/{index}"),
    ],
}


def cache_dir() -> Path:
    root = os.environ.get("RECONCILER_TEST_CACHE") or str(Path.home() / ".cache" / "polyaxon-reconciler")
    return Path(root) / "openapi"


# Bump when the trimming changes, so cached files are rebuilt.
TRIM_REVISION = 4


def _ops_digest(provider: str) -> str:
    key = json.dumps([TRIM_REVISION, OPERATIONS[provider]])
    return hashlib.sha256(key.encode()).hexdigest()[:10]


def trimmed_path(provider: str) -> Path:
    version = {"github": GITHUB_NPM_VERSION, "gitea": GITEA_GO_VERSION}[provider]
    return cache_dir() / f"{provider}-{version}-{_ops_digest(provider)}.json"


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                found.add(ref)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def trim(spec: dict[str, Any], operations: list[tuple[str, str]], source: str) -> dict[str, Any]:
    """The listed operations of ``spec`` and the transitive closure of components they use."""
    paths: dict[str, Any] = {}
    for method, template in operations:
        item = spec["paths"][template]
        out = paths.setdefault(template, {k: v for k, v in item.items() if k == "parameters"})
        out[method] = item[method]
    result: dict[str, Any] = {
        "openapi": spec["openapi"],
        "info": {**spec["info"], "x-trimmed-from": source},
        "servers": [{"url": SPEC_SERVER}],
        "paths": copy.deepcopy(paths),
        "components": {},
    }
    for key in ("security",):
        if key in spec:
            result[key] = spec[key]
    if "securitySchemes" in spec.get("components", {}):
        result["components"]["securitySchemes"] = spec["components"]["securitySchemes"]
    pending = _refs(result)
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        m = re.fullmatch(r"#/components/([^/]+)/([^/]+)", ref)
        if not m:
            raise ValueError(f"unexpected reference {ref!r}")
        kind, name = m.groups()
        target = spec["components"][kind][name]
        result["components"].setdefault(kind, {})[name] = target
        pending |= _refs(target)
    return result


def allow_null_in_responses(spec: dict[str, Any]) -> dict[str, Any]:
    """Mark properties of response-only schemas ``nullable``.

    Gitea's description is generated from Go structs and never says ``nullable``, yet the server
    sends ``null`` for unset pointers and slices (``milestone``, ``merged_at``, ``assignees``...),
    as the contract tests against a real Gitea show. Schemas also used in request bodies keep
    their strictness, so a client sending ``null`` is still caught.
    """
    schemas = spec["components"].get("schemas", {})

    def closure(roots: set[str]) -> set[str]:
        names: set[str] = set()
        pending = set(roots)
        while pending:
            ref = pending.pop()
            name = ref.rsplit("/", 1)[-1]
            if not ref.startswith("#/components/schemas/") or name in names:
                continue
            names.add(name)
            pending |= _refs(schemas[name])
        return names

    request_roots: set[str] = set()
    response_roots: set[str] = set()
    for item in spec["paths"].values():
        for method, op in item.items():
            if method == "parameters":
                continue
            request_roots |= _refs(op.get("requestBody", {})) | _refs(op.get("parameters", []))
            response_roots |= _refs(op.get("responses", {}))
    for ref in list(response_roots):
        if ref.startswith("#/components/responses/"):
            response_roots |= _refs(spec["components"]["responses"][ref.rsplit("/", 1)[-1]])
    for name in closure(response_roots) - closure(request_roots):
        props = schemas[name].get("properties", {})
        for key, prop in props.items():
            if "$ref" in prop:
                # OpenAPI 3.0 ignores keywords beside $ref, and validators check ``nullable``
                # per subschema, so "this or null" has to be spelled out.
                null = {"type": "object", "nullable": True, "enum": [None]}
                props[key] = {"anyOf": [{"$ref": prop["$ref"]}, null]}
            else:
                prop["nullable"] = True
    return spec


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def _tool(name: str, *fallbacks: str) -> str:
    for candidate in (shutil.which(name), *fallbacks):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError(f"`{name}` is needed to fetch the forge API descriptions and was not found")


def fetch_github(dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                _tool("npm"),
                "pack",
                "--silent",
                "--pack-destination",
                tmp,
                f"{GITHUB_NPM_PACKAGE}@{GITHUB_NPM_VERSION}",
            ],
            check=True,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            timeout=600,
        )
        (tarball,) = Path(tmp).glob("*.tgz")
        with tarfile.open(tarball) as tar:
            member = tar.extractfile("package/generated/api.github.com.json")
            if member is None:
                raise RuntimeError(f"{tarball.name} has no api.github.com.json")
            spec = json.load(member)
    source = f"npm {GITHUB_NPM_PACKAGE}@{GITHUB_NPM_VERSION} generated/api.github.com.json"
    _write_json(dest, trim(spec, OPERATIONS["github"], source))


def fetch_gitea(dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GOMODCACHE": str(Path(tmp) / "mod"), "GOFLAGS": "-modcacherw"}
        out = subprocess.run(
            [
                _tool("go", "/usr/local/go/bin/go"),
                "mod",
                "download",
                "-json",
                f"{GITEA_GO_MODULE}@{GITEA_GO_VERSION}",
            ],
            check=True,
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        info = json.loads(out.stdout)
        member = f"{GITEA_GO_MODULE}@{GITEA_GO_VERSION}/templates/swagger/v1_openapi3_json.tmpl"
        with zipfile.ZipFile(info["Zip"]) as zf:
            text = zf.read(member).decode()
    # The file is a Go template; only the version and sub-URL are templated.
    text = text.replace("{{.SwaggerAppVer}}", GITEA_GO_VERSION.lstrip("v")).replace("{{.SwaggerAppSubUrl}}", "")
    if "{{" in text:
        raise RuntimeError("unexpected template expression left in Gitea's OpenAPI description")
    spec = json.loads(text)
    source = f"go module {GITEA_GO_MODULE}@{GITEA_GO_VERSION} templates/swagger/v1_openapi3_json.tmpl"
    _write_json(dest, allow_null_in_responses(trim(spec, OPERATIONS["gitea"], source)))


def load_gitlab() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(GITLAB_MINIMAL.read_text())
    spec["servers"] = [{"url": SPEC_SERVER}]
    return spec


def ensure_assets() -> dict[str, dict[str, Any]]:
    """Each provider's (trimmed) OpenAPI description, fetching into the cache when missing."""
    specs: dict[str, dict[str, Any]] = {}
    for provider, fetch in (("github", fetch_github), ("gitea", fetch_gitea)):
        path = trimmed_path(provider)
        if not path.exists():
            fetch(path)
        specs[provider] = json.loads(path.read_text())
    specs["gitlab"] = load_gitlab()
    return specs


def main() -> int:
    specs = ensure_assets()
    for provider, spec in specs.items():
        ops = sum(len([m for m in item if m != "parameters"]) for item in spec["paths"].values())
        print(f"{provider}: {ops} operations, {spec['info'].get('x-trimmed-from', GITLAB_MINIMAL.name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
