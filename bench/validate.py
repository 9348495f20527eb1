"""Median time to validate a generated 3,000-line job file, beside the libyaml parse floor.

    .venv/bin/python bench/validate.py [--lines 3000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import big_command_job  # noqa: E402
from mljob.runner.validate import validate_text  # noqa: E402


def interleaved_medians(fns: list, repeat: int) -> list[float]:
    """Median ms of each function, measured in alternation so that machine noise hits all of them alike."""
    for fn in fns:
        fn()  # warm caches (schemas load once per process, as in the server)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            began = time.perf_counter()
            fn()
            times[i].append((time.perf_counter() - began) * 1000)
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    text = big_command_job(args.lines)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "job.yml"
        path.write_text(text, encoding="utf-8")
        (Path(folder) / "src").mkdir()
        analysis = validate_text(text, path)
        errors = [d for d in analysis.diagnostics if d.severity == 1]
        floor, full = interleaved_medians(
            [lambda: yaml.compose(text, Loader=yaml.CSafeLoader), lambda: validate_text(text, path)], args.repeat)
    print(f"file: {args.lines} lines, {len(text) / 1024:.0f} KiB, {len(analysis.diagnostics)} diagnostics "
          f"({len(errors)} errors)")
    print(f"libyaml compose (floor): {floor:7.2f} ms  (median of {args.repeat})")
    print(f"mljob validate:          {full:7.2f} ms  ({full / floor:.2f}x the floor; target <= 3x)")


if __name__ == "__main__":
    main()
