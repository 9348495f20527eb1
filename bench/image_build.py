"""Times of turning environments into local images, on the real engine.

    .venv/bin/python bench/image_build.py [--repeat 5] [--base]

Derived builds (each cold run gets a fresh nonce, so it really builds; its image is removed afterwards):
  Dockerfile FROM the base image (one COPY, one RUN), cold and reused; conda_file with an empty pip section (offline),
  cold and reused. `--base` also times scripts/build-base-image --force into a throwaway tag (1–2 minutes, needs root
  and network to Debian's mirror and PyPI) and prints the image size.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker
from mljob.runner import images

ROOT = Path(__file__).resolve().parent.parent


def derived(client: docker.DockerClient, repeat: int) -> None:
    quiet = lambda _line: None  # noqa: E731
    rows: dict[str, list[float]] = {"dockerfile cold": [], "dockerfile reused": [], "conda_file cold": [],
                                    "conda_file reused": []}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "ctx").mkdir()
            (folder / "ctx" / "Dockerfile").write_text(
                f"FROM {images.BASE_IMAGE}\nCOPY app.py /app.py\nRUN python -c 'import mlflow' # {uuid.uuid4()}\n",
                encoding="utf-8")
            (folder / "ctx" / "app.py").write_text("print('hi')\n", encoding="utf-8")
            (folder / "conda.yml").write_text(f"name: b-{uuid.uuid4().hex}\ndependencies:\n  - python=3.11\n"
                                              "  - pip\n  - pip: []\n", encoding="utf-8")
            build = {"build": {"path": "ctx"}}
            conda = {"image": images.BASE_IMAGE, "conda_file": "conda.yml"}
            for name, env in (("dockerfile", build), ("conda_file", conda)):
                began = time.perf_counter()
                tag = images.resolve_image(client, env, folder, progress=quiet)
                rows[f"{name} cold"].append(time.perf_counter() - began)
                began = time.perf_counter()
                images.resolve_image(client, env, folder, progress=quiet)
                rows[f"{name} reused"].append(time.perf_counter() - began)
                client.images.remove(tag, force=True)
    for name, values in rows.items():
        print(f"{name:<20} median {statistics.median(values):6.2f} s   (min {min(values):.2f}, max {max(values):.2f}, "
              f"n={len(values)})")


def base(client: docker.DockerClient) -> None:
    tag = f"mljob/bench-base:{uuid.uuid4().hex[:8]}"
    began = time.perf_counter()
    subprocess.run([str(ROOT / "scripts" / "build-base-image"), "--force", tag], check=True)
    elapsed = time.perf_counter() - began
    size = client.images.get(tag).attrs["Size"]
    client.images.remove(tag)
    print(f"base image build     {elapsed:6.1f} s   size {size / 1e6:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--base", action="store_true", help="also time a full base image build")
    args = parser.parse_args()
    try:
        client = images.engine()
        client.images.get(images.BASE_IMAGE)
    except Exception as exc:  # a bench says why it cannot run, no traceback
        sys.exit(f"cannot run: {exc}")
    derived(client, args.repeat)
    if args.base:
        base(client)


if __name__ == "__main__":
    main()
