"""The `mljob` command line (runner verbs). `mljob lsp` is dispatched in mljob/__main__.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mljob.runner.diagnostics import Severity
from mljob.runner.report import as_json, dump_json, line_format
from mljob.runner.validate import Settings, job_files, validate_file

from mljob import __version__


def _validate(args: argparse.Namespace) -> int:
    overrides: list[str] = args.set or []
    entries: list[dict[str, object]] = []
    counts = {Severity.ERROR: 0, Severity.WARNING: 0, Severity.INFORMATION: 0, Severity.HINT: 0}
    files = job_files(Path(p) for p in args.paths)
    missing = [str(p) for p, explicit in files if explicit and not p.exists()]
    for name in missing:
        print(f"{name}: error MLJ001: no such file. Check the path.", file=sys.stderr)
    checked = jobs = 0
    disabled = frozenset(c.strip() for c in (args.disable or "").split(",") if c.strip())
    for path, explicit in files:
        if not path.exists():
            continue
        settings = Settings(disabled_codes=disabled, strict=explicit)
        analysis = validate_file(path, settings=settings, overrides=overrides)
        checked += 1
        if not analysis.is_job_file and not analysis.diagnostics:
            continue
        jobs += analysis.is_job_file
        for diagnostic in analysis.diagnostics:
            if diagnostic.severity == Severity.HINT and not args.hints:
                continue
            counts[diagnostic.severity] += 1
            if args.format == "json":
                entries.append(as_json(path, diagnostic, overrides))
            else:
                print(line_format(path, diagnostic, overrides))
    if args.format == "json":
        print(dump_json(entries))
    if args.format != "json" or args.verbose:
        print(f"checked {checked} file{'s' if checked != 1 else ''} ({jobs} job file{'s' if jobs != 1 else ''}): "
              f"{counts[Severity.ERROR]} errors, {counts[Severity.WARNING]} warnings", file=sys.stderr)
    return 1 if counts[Severity.ERROR] or missing else 0


def _migrate(args: argparse.Namespace) -> int:
    from mljob.runner.migrate import MigrationError, migrate_text

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        print(f"{path}: error MLJ001: cannot read the file ({err}).", file=sys.stderr)
        return 1
    try:
        result = migrate_text(text)
    except MigrationError as err:
        print(f"{path}: error MLJ002: {err}", file=sys.stderr)
        return 1
    for change in result.changes:
        print(f"{path}:{change.line + 1}: {change.message}", file=sys.stderr)
    if args.write:
        if result.text != text:
            path.write_text(result.text, encoding="utf-8", newline="")
        print(f"{path}: {len(result.changes)} change{'s' if len(result.changes) != 1 else ''} written",
              file=sys.stderr)
    else:
        sys.stdout.write(result.text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mljob", description="Validate, migrate and run Azure ML job files "
                                     "on your own machines.")
    parser.add_argument("--version", action="version", version=f"mljob {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    validate = verbs.add_parser("validate", help="check job files (files or folders) and print diagnostics")
    validate.add_argument("paths", nargs="+", metavar="PATH")
    validate.add_argument("--format", choices=("text", "json"), default="text")
    validate.add_argument("--set", action="append", metavar="KEY.PATH=VALUE",
                          help="override a value as `az ml job create --set` does (repeatable)")
    validate.add_argument("--disable", metavar="CODES", help="comma-separated diagnostic codes to ignore")
    validate.add_argument("--hints", action="store_true", help="also print hints (unused inputs, …)")
    validate.add_argument("-v", "--verbose", action="store_true")
    validate.set_defaults(run=_validate)

    migrate = verbs.add_parser("migrate", help="rewrite 2021 preview syntax as today's syntax, keeping comments")
    migrate.add_argument("file")
    migrate.add_argument("--write", action="store_true", help="change the file in place (default: print)")
    migrate.set_defaults(run=_migrate)

    job = verbs.add_parser("job", help="job verbs, as `az ml job`")
    job_verbs = job.add_subparsers(dest="job_verb", metavar="VERB")
    job_validate = job_verbs.add_parser("validate", help="check one job file")
    job_validate.add_argument("-f", "--file", dest="paths", action="append", required=True)
    job_validate.add_argument("--format", choices=("text", "json"), default="text")
    job_validate.add_argument("--set", action="append", metavar="KEY.PATH=VALUE")
    job_validate.add_argument("--disable", metavar="CODES")
    job_validate.add_argument("--hints", action="store_true")
    job_validate.add_argument("-v", "--verbose", action="store_true")
    job_validate.set_defaults(run=_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return 2
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
