"""A job's `environment` (GA syntax) → an image present in the local Docker engine, built or mapped when needed.

    {image: X}                          X if the engine has it, else `docker pull X`, else the `images:` mapping
    {build: {path, dockerfile_path}}    docker build (classic builder) → mljob/env:<content hash>, reused
    {image: X, conda_file: F}           X resolved as above + F applied by a generated Dockerfile → mljob/env:<hash>
    azureml:NAME[:VERSION|@LABEL]       the `environments:` mapping (by NAME); also azureml://registries/…/NAME/…

The mapping file (runner/registry.py reads it; `environments_file` setting or $MLJOB_HOME/environments.yml):

    environments: {AZUREML_NAME: LOCAL_IMAGE}    # NAME as written, NAME:VERSION / NAME@LABEL for one version
    images: {PUBLIC_IMAGE: LOCAL_IMAGE}          # `python` ≡ `docker.io/library/python:latest`
    # keys may be globs (* ? [..]): `python:*`, `mcr.microsoft.com/azureml/*`, `AzureML-sklearn-*`;
    # an exact key wins over a glob, and globs are tried in file order.

When the file does not exist, the starter mappings of `default_environments_file_content()` apply (public Python
and Azure ML base images → the local base image), so the corpus' hello-world jobs run on a fresh machine; write the
file (`write_default_environments_file`) to change them.

Built images are tagged by a hash of everything that decides their content (files of the build context that Docker
would send, the Dockerfile, the IDs of local FROM images, the conda file), so an unchanged environment is never
rebuilt and a changed one never reuses a stale image.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import os
import re
import shlex
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from mljob.runner import registry

if TYPE_CHECKING:  # the SDK costs ~170 ms to import: only the slow paths (build, pull, probe) load it
    import docker

BASE_IMAGE = "mljob/base:bookworm"
BUILT_REPOSITORY = "mljob/env"
# Bump when the generated Dockerfiles or the hash inputs change: old tags must not be reused.
_RECIPE_VERSION = "1"
_DEFAULT_SOCKET = "unix:///var/run/docker.sock"

Progress = Callable[[str], None]


class EngineError(RuntimeError):
    """No Docker engine answers."""


class ImageError(RuntimeError):
    """An environment cannot become a local image; the message says how to fix it."""


# ---------------------------------------------------------------------------------------------------------- engine


def engine(base_url: str | None = None, timeout: int = 600) -> docker.DockerClient:
    """A client whose engine answers, or EngineError. The long timeout is for builds that print nothing for minutes
    (a conda solve) and for waits on containers."""
    import docker
    from docker.errors import DockerException

    where = base_url or os.environ.get("DOCKER_HOST") or _DEFAULT_SOCKET
    try:
        if base_url:
            client = docker.DockerClient(base_url=base_url, timeout=timeout)
        else:
            client = docker.from_env(timeout=timeout)
        client.ping()
    except (DockerException, OSError) as exc:
        raise EngineError(
            f"Docker engine not reachable at {where}; start it with `sudo dockerd` (or ./scripts/setup-docker) "
            f"or use `--set compute=process` ({_reason(exc)})"
        ) from None
    return client


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
    return str(text).strip().splitlines()[-1][:300]


# ------------------------------------------------------------------------------------------------------- resolving


def resolve_image(
    client: docker.DockerClient,
    environment: str | dict[str, Any],
    job_folder: Path,
    *,
    environments_file: Path | None = None,
    progress: Progress = print,
) -> str:
    """An image reference present in the engine for a job's GA `environment` value (see the module docstring)."""
    maps = _Mappings.load(environments_file)
    if isinstance(environment, str):
        if environment.startswith("azureml:"):
            return _azureml(client, environment, maps, progress)
        raise ImageError(
            f"environment `{environment}` is neither an `azureml:` name nor an inline environment: write "
            "`environment: {image: IMAGE}` or `environment: azureml:NAME@latest`"
        )
    if not isinstance(environment, dict):
        raise ImageError("environment must be an `azureml:` name or a mapping with `image` or `build`")
    if environment.get("build") is not None:
        return _build_from_dockerfile(client, environment["build"], job_folder, progress)
    image = environment.get("image")
    if not isinstance(image, str) or not image.strip():
        raise ImageError("the inline environment needs `image` (e.g. `image: python:3.11-slim`) or `build`")
    base = _image(client, image.strip(), maps, progress)
    conda_file = environment.get("conda_file")
    if conda_file is None:
        return base
    return _derive_with_conda_file(client, base, conda_file, job_folder, progress)


def _image(client: docker.DockerClient, ref: str, maps: _Mappings, progress: Progress, *, via: str = "") -> str:
    """Present → mapped → pull (one level: a mapping's target is only looked up or pulled). The mapping comes before
    the pull: it is the user's own word for what the name means here, and it needs no network."""
    if _present(client, ref):
        return ref
    target, key = (None, "") if via else maps.image_for(ref)
    if target is not None:
        progress(f"{ref} → {target} ({maps.origin(key)})")
        return _image(client, target, maps, progress, via=f"`{ref}` ({maps.origin(key)})")
    pull_failure = _pull(client, ref, progress)
    if pull_failure is None:
        return ref
    if via:  # already the target of a mapping
        raise ImageError(
            f"{via} maps to `{ref}`, which is not in the Docker engine and cannot be pulled ({pull_failure}): "
            f"{_make_it_local(ref)}, or change the mapping in {maps.path}"
        )
    raise ImageError(
        f"image `{ref}` is not in the Docker engine and cannot be pulled ({pull_failure}). Map it to a local "
        f"image: add `{_yaml_key(ref)}: {_suggested_local(client)}` under `images:` in {maps.path}; "
        f"or {_make_it_local(ref)}"
    )


def resolve_present(exists: Callable[[str], bool], environment: Any, *, environments_file: Path | None = None,
                    progress: Progress = print) -> str | None:
    """The image for an environment that needs no build and no pull (present as written, or mapped to a present
    image), asked through `exists` alone; None when the full resolve_image must decide. A run's fast path."""
    maps = _Mappings.load(environments_file)
    if isinstance(environment, str):
        if not environment.startswith("azureml:"):
            return None
        target, key = maps.environment_for(environment, azureml_environment_name(environment))
        origin = environment
    elif isinstance(environment, dict) and environment.get("build") is None and environment.get("conda_file") is None:
        image = environment.get("image")
        if not isinstance(image, str) or not image.strip():
            return None
        if exists(image.strip()):
            return image.strip()
        target, key = maps.image_for(image.strip())
        origin = image.strip()
    else:
        return None
    if target is None or not exists(target):
        return None
    progress(f"{origin} → {target} ({maps.origin(key)})")
    return target


def _azureml(client: docker.DockerClient, spec: str, maps: _Mappings, progress: Progress) -> str:
    name = azureml_environment_name(spec)
    target, key = maps.environment_for(spec, name)
    if target is None:
        raise ImageError(
            f"environment `{spec}` is an Azure ML environment, which runs here once mapped to a local image: add "
            f"`{_yaml_key(name)}: {_suggested_local(client)}` under `environments:` in {maps.path} (the image "
            "needs the packages the job imports; build one FROM the base image with `docker build -t NAME .`)"
        )
    progress(f"{spec} → {target} ({maps.origin(key)})")
    return _image(client, target, maps, progress, via=f"`{spec}` ({maps.origin(key)})")


def azureml_environment_name(spec: str) -> str:
    """`azureml:NAME:1`, `azureml:NAME@latest`, `azureml://registries/R/environments/NAME/labels/L`, ARM ids → NAME."""
    rest = spec[len("azureml:") :] if spec.startswith("azureml:") else spec
    if rest.startswith("/"):
        found = re.search(r"/environments/([^/]+)", rest)
        return found.group(1) if found else rest.strip("/")
    return re.split(r"[@:]", rest, maxsplit=1)[0]


def _present(client: docker.DockerClient, ref: str) -> bool:
    from docker.errors import APIError, ImageNotFound

    try:
        client.images.get(ref)
    except ImageNotFound:
        return False
    except APIError as exc:  # an invalid reference is "not present"; the pull then explains it
        if exc.status_code and exc.status_code < 500:
            return False
        raise
    return True


def _pull(client: docker.DockerClient, ref: str, progress: Progress) -> str | None:
    """None when pulled, else why not. Prints one line per layer state, not per byte."""
    import docker
    from docker.errors import DockerException

    repository, tag = docker.utils.parse_repository_tag(ref)
    progress(f"pulling {ref} …")
    last: dict[str, str] = {}
    try:
        for event in client.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
            if "error" in event:
                return str(event["error"]).strip()
            status, layer = str(event.get("status", "")), str(event.get("id", ""))
            if status and last.get(layer) != status:
                last[layer] = status
                progress(f"  {layer}: {status}" if layer else f"  {status}")
    except DockerException as exc:
        return _reason(exc)
    return None if _present(client, ref) else "the engine reported no error but has no such image"


def _suggested_local(client: docker.DockerClient) -> str:
    return BASE_IMAGE if _present(client, BASE_IMAGE) else "<local image>"


def _make_it_local(ref: str) -> str:
    hint = "./scripts/build-base-image" if ref == BASE_IMAGE else f"`docker build -t {shlex.quote(ref)} …`"
    return f"build it ({hint}) or load it (`docker load -i FILE.tar`)"


def _yaml_key(text: str) -> str:
    # `python:3.11: x` is valid YAML, but a key with `: `, `#`, `*` or a leading special character needs quotes.
    return json.dumps(text) if re.search(r"[\s#*?\[\]{},&!|>'\"%@`]|^[-:]", text) else text


# -------------------------------------------------------------------------------------------------------- mappings


@functools.cache
def _default_mappings() -> dict[str, Any]:
    return yaml.load(default_environments_file_content(), Loader=yaml.CSafeLoader)


class _Mappings:
    """The `images:` and `environments:` sections, with exact, normalized and glob lookups."""

    def __init__(self, path: Path, images: dict[str, str], environments: dict[str, str], builtin: bool) -> None:
        self.path, self.images, self.environments, self.builtin = path, images, environments, builtin

    @classmethod
    def load(cls, override: Path | None) -> _Mappings:
        path = registry.environments_file(override)
        if path.exists():
            return cls(path, registry.images(path), registry.environments(path), builtin=False)
        data = _default_mappings()
        return cls(path, dict(data["images"]), dict(data["environments"]), builtin=True)

    def origin(self, key: str) -> str:
        where = f"built-in default; write {self.path} to change it" if self.builtin else str(self.path)
        return f"mapping `{key}`, {where}"

    def image_for(self, ref: str) -> tuple[str | None, str]:
        normal = normalize_reference(ref)
        literal = [k for k in self.images if k == ref]
        exact = literal or [k for k in self.images if not _is_glob(k) and normalize_reference(k) == normal]
        globs = (
            k
            for k in self.images
            if _is_glob(k)
            and any(fnmatch.fnmatchcase(candidate, pattern)
                    for candidate in (ref, normal) for pattern in (k, normalize_reference(k)))
        )
        return self._first(self.images, [*exact[:1], *globs])

    def environment_for(self, spec: str, name: str) -> tuple[str | None, str]:
        written = spec[len("azureml:") :]
        exact = [k for k in (written, name) if k in self.environments and not _is_glob(k)]
        globs = (k for k in self.environments if _is_glob(k) and fnmatch.fnmatchcase(name, k))
        return self._first(self.environments, [*exact, *globs])

    @staticmethod
    def _first(table: dict[str, str], keys: Iterable[str]) -> tuple[str | None, str]:
        for key in keys:
            return table[key], key
        return None, ""


def _is_glob(key: str) -> bool:
    return any(c in key for c in "*?[")


def normalize_reference(ref: str) -> str:
    """Docker's long form: `python` → `docker.io/library/python:latest`, `mcr.microsoft.com/x` → `…/x:latest`."""
    name, at, digest = ref.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = ""
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    first, sep, rest = name.partition("/")
    if not sep or not ("." in first or ":" in first or first == "localhost"):
        first, rest = "docker.io", name
    if first == "index.docker.io":
        first = "docker.io"
    if first == "docker.io" and "/" not in rest:
        rest = f"library/{rest}"
    if at:
        return f"{first}/{rest}{':' + tag if tag else ''}@{digest}"
    return f"{first}/{rest}:{tag or 'latest'}"


def default_environments_file_content(base_image: str = BASE_IMAGE) -> str:
    """The starter environments.yml: the public names the corpus' hello-world jobs and the seed use → the base image."""
    return f"""\
# mljob: which local image runs a job's environment (no image registry needed).
# Keys may be globs (* ? [..]); an exact key wins over a glob, and globs are tried in file order.
# Images are compared in Docker's long form: `python` is `docker.io/library/python:latest`.
# {base_image} has Python 3.11, pip and MLflow only (scripts/build-base-image): map a name to an image of your own
# (`docker build -t my/sklearn .` with `FROM {base_image}` and `RUN pip install scikit-learn`) when jobs import more.

images:
  python: {base_image}
  "python:*": {base_image}
  "library/python:*": {base_image}
  "mcr.microsoft.com/azureml/*": {base_image}

environments:   # `azureml:NAME[:VERSION|@LABEL]` and azureml://registries/azureml/environments/NAME/… by NAME
  AzureML-sklearn-1.5: {base_image}
  sklearn-1.5: {base_image}
  AzureML-lightgbm-3.3: {base_image}
  lightgbm-3.3: {base_image}
"""


def write_default_environments_file(path: Path | None = None, base_image: str = BASE_IMAGE) -> Path | None:
    """Write the starter file where mljob reads it; never overwrites. The path written, or None if one exists."""
    target = registry.environments_file(path)
    if target.exists():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with target.open("x", encoding="utf-8") as handle:  # "x": a file written meanwhile is kept
            handle.write(default_environments_file_content(base_image))
    except FileExistsError:
        return None
    return target


# ------------------------------------------------------------------------------------------------- content hashing


def build_tag(digest: str) -> str:
    return f"{BUILT_REPOSITORY}:{digest[:16]}"


class _Hasher:
    def __init__(self, kind: str) -> None:
        self._h = hashlib.sha256(f"mljob-{kind}-v{_RECIPE_VERSION}\0".encode())

    def add(self, *parts: str | bytes) -> None:
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            # Length-prefixed: ("ab", "c") and ("a", "bc") must differ.
            self._h.update(len(data).to_bytes(8, "big") + data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def _context_files(context: Path, dockerfile_in_context: str | None) -> list[str]:
    """The files Docker would send (honours .dockerignore), by the SDK's own matcher."""
    from docker.utils.build import exclude_paths

    ignore = context / ".dockerignore"
    patterns: list[str] = []
    if ignore.is_file():
        lines = ignore.read_text(encoding="utf-8", errors="replace").splitlines()
        patterns = [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]
    return sorted(exclude_paths(str(context), patterns, dockerfile=dockerfile_in_context))


def _hash_context(h: _Hasher, context: Path, files: list[str]) -> None:
    for rel in files:
        full = context / rel
        info = full.lstat()
        if stat.S_ISLNK(info.st_mode):
            h.add("link", rel, os.readlink(full))
        elif stat.S_ISDIR(info.st_mode):
            h.add("dir", rel)
        elif stat.S_ISREG(info.st_mode):
            h.add("file", rel, oct(info.st_mode & 0o777), full.read_bytes())


_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE | re.MULTILINE)


def _from_images(dockerfile_text: str) -> Iterator[str]:
    """Images a Dockerfile starts from, without its own stage names and `$ARG` references."""
    stages: set[str] = set()
    for match in _FROM.finditer(dockerfile_text):
        image, alias = match.group(1), match.group(2)
        if image.lower() not in stages and "$" not in image and image.lower() != "scratch":
            yield image
        if alias:
            stages.add(alias.lower())


def _image_id(client: docker.DockerClient, ref: str) -> str:
    from docker.errors import DockerException

    try:
        return str(client.images.get(ref).id)
    except DockerException:
        return f"absent:{ref}"


# ------------------------------------------------------------------------------------------------------- building


def _build_from_dockerfile(
    client: docker.DockerClient, build: Any, job_folder: Path, progress: Progress
) -> str:
    if not isinstance(build, dict) or not isinstance(build.get("path"), str):
        raise ImageError("`environment.build` needs `path`: the build context folder (e.g. `build: {path: docker}`)")
    raw_path = build["path"]
    if "://" in raw_path or raw_path.startswith("git@"):
        raise ImageError(f"build context `{raw_path}` is remote; the local runner builds from a folder only")
    context = (job_folder / raw_path).resolve()
    if not context.is_dir():
        raise ImageError(f"build context `{raw_path}` is not a folder (looked for {context})")
    dockerfile_rel = str(build.get("dockerfile_path") or "Dockerfile")
    dockerfile = (context / dockerfile_rel).resolve()
    if not dockerfile.is_file():
        raise ImageError(f"`dockerfile_path: {dockerfile_rel}` names no file (looked for {dockerfile}; it is relative "
                         f"to the build context {context})")
    inside = dockerfile.is_relative_to(context)
    dockerfile_text = dockerfile.read_text(encoding="utf-8", errors="replace")

    h = _Hasher("build")
    h.add("dockerfile", dockerfile_text)
    for ref in _from_images(dockerfile_text):
        h.add("from", ref, _image_id(client, ref))
    _hash_context(h, context, _context_files(context, str(dockerfile.relative_to(context)) if inside else None))
    digest = h.hexdigest()
    tag = build_tag(digest)
    if _present(client, tag):
        progress(f"environment image {tag} (built before from {dockerfile})")
        return tag
    progress(f"building {tag} from {dockerfile} (context {context})")
    labels = {"mljob.env.hash": digest, "mljob.env.source": str(dockerfile)}
    _run_build(client, progress, tag, labels=labels, path=str(context),
               dockerfile=str(dockerfile) if not inside else dockerfile_rel)
    return tag


def _run_build(client: docker.DockerClient, progress: Progress, tag: str, **kwargs: Any) -> None:
    """Classic builder (the engine API's default; the SDK never asks for BuildKit), output streamed to `progress`."""
    from docker.errors import DockerException

    tail: list[str] = []
    try:
        for event in client.api.build(tag=tag, rm=True, forcerm=True, decode=True, **kwargs):
            if "error" in event:
                raise ImageError(_build_failure(tag, str(event["error"]).strip(), tail))
            text = str(event.get("stream") or event.get("status") or "")
            for line in text.splitlines():
                if line.strip():
                    tail = [*tail[-19:], line]
                    progress(f"  {line}")
    except DockerException as exc:
        raise ImageError(_build_failure(tag, _reason(exc), tail)) from None
    if not _present(client, tag):
        raise ImageError(_build_failure(tag, "the engine reported no error but did not tag the image", tail))


def _build_failure(tag: str, error: str, tail: list[str]) -> str:
    hint = ""
    if re.search(r"pull access denied|no such host|manifest unknown|failed to resolve|dial tcp", error):
        hint = (" The Dockerfile starts FROM an image the engine does not have and cannot pull: start FROM a local "
                f"one ({BASE_IMAGE}), or tag one under that name (`docker tag {BASE_IMAGE} NAME`).")
    last = "\n".join(f"    {line}" for line in tail[-8:])
    return f"building {tag} failed: {error}.{hint}" + (f"\n  last build output:\n{last}" if last else "")


# ------------------------------------------------------------------------------------------------- conda_file


def _load_conda_file(conda_file: Any, job_folder: Path) -> tuple[dict[str, Any], str]:
    """The conda spec and where it came from (a path relative to the job's folder, or an inline mapping)."""
    if isinstance(conda_file, dict):
        return conda_file, "the inline conda_file"
    if not isinstance(conda_file, str):
        raise ImageError("`conda_file` must be a path to a conda environment file")
    path = (job_folder / conda_file).resolve()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ImageError(f"conda_file `{conda_file}` cannot be read ({exc.strerror}; looked for {path})") from None
    except yaml.YAMLError as exc:
        raise ImageError(f"conda_file `{conda_file}` is not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ImageError(f"conda_file `{conda_file}` is not a conda environment (a mapping with `dependencies:`)")
    return data, str(path)


def conda_packages(spec: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(conda packages other than python and pip, pip requirements) of a conda environment spec."""
    conda: list[str] = []
    pip: list[str] = []
    for dep in spec.get("dependencies") or []:
        if isinstance(dep, dict):
            pip += [str(p) for p in dep.get("pip") or []]
        elif isinstance(dep, str) and not re.match(r"^(python|pip)([<>=!~\s]|$)", dep.strip()):
            conda.append(dep.strip())
    return conda, pip


_PROBE = r"""
for c in micromamba mamba conda; do p=$(command -v "$c") && { echo "conda=$p"; break; }; done
for c in python3 python; do
  p=$(command -v "$c") && { echo "python=$p"; "$p" -m pip --version >/dev/null 2>&1 && echo pip=yes; break; }
done
exit 0
"""


def _probe(client: docker.DockerClient, image: str) -> dict[str, str]:
    """What the image has: conda (or mamba, micromamba), a python, and pip for it."""
    from docker.errors import DockerException

    try:
        out = client.containers.run(image, entrypoint=["/bin/sh", "-c", _PROBE], remove=True, network_disabled=True,
                                    stdout=True, stderr=False)
    except DockerException:
        return {}  # no /bin/sh: neither conda nor pip can run there
    found = dict(line.split("=", 1) for line in out.decode(errors="replace").splitlines() if "=" in line)
    return {k: v.strip() for k, v in found.items()}


def _derive_with_conda_file(
    client: docker.DockerClient, base: str, conda_file: Any, job_folder: Path, progress: Progress
) -> str:
    spec, source = _load_conda_file(conda_file, job_folder)
    conda_deps, pip_reqs = conda_packages(spec)
    base_id = _image_id(client, base)
    h = _Hasher("conda")
    h.add("base", base_id, "spec", json.dumps(spec, sort_keys=True, default=str))
    digest = h.hexdigest()
    tag = build_tag(digest)
    if _present(client, tag):
        progress(f"environment image {tag} ({base} + {source}, built before)")
        return tag

    tools = _probe(client, base)
    with tempfile.TemporaryDirectory(prefix="mljob-env-") as tmp:
        context = Path(tmp)
        labels = {"mljob.env.hash": digest, "mljob.env.source": source, "mljob.env.base": base}
        dockerfile, needs_network = _conda_dockerfile(base_id, labels, spec, conda_deps, pip_reqs, tools, source,
                                                      context, progress)
        (context / "Dockerfile").write_text(dockerfile, encoding="utf-8")
        progress(f"building {tag}: {base} + {source}")
        # Nothing to install means nothing to fetch: the build then has no network at all.
        _run_build(client, progress, tag, path=str(context), network_mode=None if needs_network else "none")
    return tag


def _conda_dockerfile(
    base_id: str,
    labels: dict[str, str],
    spec: dict[str, Any],
    conda_deps: list[str],
    pip_reqs: list[str],
    tools: dict[str, str],
    source: str,
    context: Path,
    progress: Progress,
) -> tuple[str, bool]:
    """The generated Dockerfile and whether its build needs the network."""
    # Labels in the Dockerfile: one step, where the build API's `labels` would add a step per label.
    lines = [f"FROM {base_id}", "LABEL " + " ".join(f"{k}={json.dumps(v)}" for k, v in labels.items())]
    # The host's CA bundle: without it pip and conda in the build cannot verify PyPI here (measured); it is public
    # data and is removed in the same step.
    conda = tools.get("conda")
    if conda and (conda_deps or pip_reqs):
        (context / "conda.yml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        tls = _copy_ca(context, lines)
        lines.append("COPY conda.yml /tmp/mljob/conda.yml")
        tool = shlex.quote(conda)
        if Path(conda).name == "micromamba":
            install = f"{tool} install -y -n base -f /tmp/mljob/conda.yml && {tool} clean -a -y"
        else:
            install = f"{tool} env update -n base -f /tmp/mljob/conda.yml && {tool} clean -a -y"
        lines.append(f"RUN {tls} {install} && rm -rf /tmp/mljob")
        return "\n".join(lines) + "\n", True
    if conda_deps:
        progress(f"note: the image has no conda, so the conda packages of {source} are ignored "
                 f"({', '.join(conda_deps)}); only its `pip:` section is installed. Use an image with conda, or "
                 "move them under `pip:`.")
    if not pip_reqs:
        return "\n".join(lines) + "\n", False
    python = tools.get("python")
    if not python or tools.get("pip") != "yes":
        raise ImageError(
            f"{source} has a `pip:` section but the image has no "
            f"{'pip for ' + python if python else 'python'}: use an image with Python and pip ({BASE_IMAGE} has both)"
        )
    (context / "requirements.txt").write_text("\n".join(pip_reqs) + "\n", encoding="utf-8")
    tls = _copy_ca(context, lines)
    lines.append("COPY requirements.txt /tmp/mljob/requirements.txt")
    pip_env = ("PIP_BREAK_SYSTEM_PACKAGES=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "
               "PIP_ROOT_USER_ACTION=ignore")
    lines.append(f"RUN {tls} {pip_env} {shlex.quote(python)} -m pip install -r /tmp/mljob/requirements.txt "
                 "&& rm -rf /tmp/mljob")
    return "\n".join(lines) + "\n", True


def _ca_bundle() -> Path:
    return Path(os.environ.get("MLJOB_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"))


def _copy_ca(context: Path, lines: list[str]) -> str:
    """Adds the host's CA bundle to the build; the environment assignments that make pip and conda use it."""
    bundle = _ca_bundle()
    if not bundle.is_file():
        return ""
    (context / "ca.crt").write_bytes(bundle.read_bytes())
    lines.append("COPY ca.crt /tmp/mljob/ca.crt")
    ca = "/tmp/mljob/ca.crt"
    return f"PIP_CERT={ca} REQUESTS_CA_BUNDLE={ca} SSL_CERT_FILE={ca} CONDA_SSL_VERIFY={ca}"
