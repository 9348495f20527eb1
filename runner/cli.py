"""The `mljob` command line (runner verbs). `mljob lsp` is dispatched in mljob/__main__.py."""

from __future__ import annotations

import argparse
import functools
import os
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
    from mljob.runner.diagnostics import Diagnostic, Range
    from mljob.runner.document import read_text
    from mljob.runner.migrate import MigrationError, migrate_text

    path = Path(args.file)
    # Read as `mljob validate` reads (runner/document.py: regular files only, at most 4 MiB); migrate_text then
    # refuses what validation refuses before YAML is read (an alias bomb), with the same codes and lines.
    text, problem = read_text(path)
    if text is None:
        print(line_format(path, problem), file=sys.stderr)  # type: ignore[arg-type]
        return 1
    try:
        result = migrate_text(text)
    except MigrationError as err:
        found = Diagnostic(Range.at(err.line, err.column), Severity.ERROR, err.code, err.reason)
        print(line_format(path, found), file=sys.stderr)
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


def _job_create(args: argparse.Namespace) -> int:
    from mljob.runner import jobs

    return jobs.create(args.file, args.set or [], args.name, args.stream, args.dry_run)


def _job_show(args: argparse.Namespace) -> int:
    from mljob.runner import jobs

    return jobs.show(args.name)


def _job_list(args: argparse.Namespace) -> int:
    from mljob.runner import jobs

    return jobs.list_jobs(args.experiment, args.status)


def _job_stream(args: argparse.Namespace) -> int:
    from mljob.runner import jobs

    return jobs.stream(args.name)


def _job_download(args: argparse.Namespace) -> int:
    from mljob.runner import jobs

    return jobs.download(args.name, args.outputs, args.all, args.download_path)


def _job_resume(args: argparse.Namespace) -> int:
    from mljob.runner import jobs

    return jobs.resume(args.name, args.stream)


def _daemon(args: argparse.Namespace) -> int:
    # `mljob daemon …` is taken by mljob/__main__.py before this parser; listed here so that --help shows it.
    from mljob.runner.resident import command

    return command(args.rest)


def _job_cancel(args: argparse.Namespace) -> int:
    from mljob.runner import jobs

    return jobs.cancel(args.name)


def _compute_create(args: argparse.Namespace) -> int:
    from mljob.runner import computes

    settings = list(args.set or [])
    if args.address:
        settings.append(f"address={args.address}")
    return computes.create(args.name, args.type, settings)


def _compute_list(args: argparse.Namespace) -> int:
    from mljob.runner import computes

    return computes.list_computes()


def _ui(args: argparse.Namespace) -> int:
    from mljob.runner import computes

    return computes.ui()


def _tracking(args: argparse.Namespace) -> int:
    from mljob.runner import computes

    return computes.tracking_verb(args.action)


def _add_runner_verbs(verbs: argparse._SubParsersAction, job_verbs: argparse._SubParsersAction) -> None:
    from mljob.runner.history import STATUSES

    create = job_verbs.add_parser("create", help="run a job on this machine (Docker, or a plain process)")
    create.add_argument("-f", "--file", required=True)
    create.add_argument("--set", action="append", metavar="KEY.PATH=VALUE",
                        help="override a value, e.g. `--set compute=process` (repeatable)")
    create.add_argument("-n", "--name", help="the job's name (default: a generated readable name)")
    create.add_argument("-s", "--stream", action="store_true", help="follow the logs; exit with the job's outcome")
    create.add_argument("--dry-run", action="store_true", help="show what would run (instances, processes, "
                        "variables) and record nothing")
    create.set_defaults(run=_job_create)

    show = job_verbs.add_parser("show", help="status, params, metrics and artifacts of a job")
    show.add_argument("-n", "--name", required=True)
    show.set_defaults(run=_job_show)

    listing = job_verbs.add_parser("list", help="jobs in the run history, newest first")
    listing.add_argument("--experiment", metavar="NAME")
    listing.add_argument("--status", choices=STATUSES)
    listing.set_defaults(run=_job_list)

    stream = job_verbs.add_parser("stream", help="follow a job's logs until it ends")
    stream.add_argument("-n", "--name", required=True)
    stream.set_defaults(run=_job_stream)

    download = job_verbs.add_parser("download", help="copy a job's artifacts (default: outputs and logs)")
    download.add_argument("-n", "--name", required=True)
    which = download.add_mutually_exclusive_group()
    which.add_argument("--outputs", action="store_true", help="./outputs and the named outputs")
    which.add_argument("--all", action="store_true", help="every artifact")
    download.add_argument("-p", "--download-path", metavar="PATH", help="where to (default: ./NAME)")
    download.set_defaults(run=_job_download)

    cancel = job_verbs.add_parser("cancel", help="stop a running job (its container or process is removed)")
    cancel.add_argument("-n", "--name", required=True)
    cancel.set_defaults(run=_job_cancel)

    resume = job_verbs.add_parser("resume", help="finish a sweep whose driver stopped (no trial lost or run twice)")
    resume.add_argument("-n", "--name", required=True)
    resume.add_argument("-s", "--stream", action="store_true", help="follow the trials; exit with the outcome")
    resume.set_defaults(run=_job_resume)

    run = verbs.add_parser("run", help="shorthand for `job create -f FILE --stream`")
    run.add_argument("file")
    run.add_argument("--set", action="append", metavar="KEY.PATH=VALUE")
    run.add_argument("-n", "--name")
    run.add_argument("--dry-run", action="store_true", help="show what would run and record nothing")
    run.set_defaults(run=_job_create, stream=True)

    compute = verbs.add_parser("compute", help="named computes (`compute: azureml:NAME` in a job)")
    compute.set_defaults(usage=compute)
    compute_verbs = compute.add_subparsers(dest="compute_verb", metavar="VERB")
    compute_create = compute_verbs.add_parser("create", help="add or replace a named compute")
    compute_create.add_argument("-n", "--name", required=True)
    compute_create.add_argument("--type", required=True, choices=("local", "process", "ray"),
                                help="local: Docker on this machine; process: plain processes; ray: a Ray cluster")
    compute_create.add_argument("--address", metavar="URL", help="ray: the dashboard's address, e.g. "
                                "http://127.0.0.1:8265 (what `scripts/ray-head` prints)")
    compute_create.add_argument("--set", action="append", metavar="KEY=VALUE", help="a setting (repeatable), e.g. "
                                "ray's shared_dir=PATH")
    compute_create.set_defaults(run=_compute_create)
    compute_list = compute_verbs.add_parser("list", help="the computes jobs can name")
    compute_list.set_defaults(run=_compute_list)

    daemon = verbs.add_parser("daemon", help="the resident runner later calls hand their work to: status | stop",
                              add_help=False)
    daemon.add_argument("rest", nargs=argparse.REMAINDER)
    daemon.set_defaults(run=_daemon)

    ui = verbs.add_parser("ui", help="the MLflow UI on the run history (its address; served by the tracking server)")
    ui.set_defaults(run=_ui)
    server = verbs.add_parser("tracking", help="the tracking server jobs log through: status | stop")
    server.add_argument("action", choices=["status", "stop"])
    server.set_defaults(run=_tracking)


@functools.cache  # built once per process: the resident runner builds it before forking its calls
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
    job.set_defaults(usage=job)  # `mljob job` alone prints the job verbs
    job_verbs = job.add_subparsers(dest="job_verb", metavar="VERB")
    job_validate = job_verbs.add_parser("validate", help="check one job file")
    job_validate.add_argument("-f", "--file", dest="paths", action="append", required=True)
    job_validate.add_argument("--format", choices=("text", "json"), default="text")
    job_validate.add_argument("--set", action="append", metavar="KEY.PATH=VALUE")
    job_validate.add_argument("--disable", metavar="CODES")
    job_validate.add_argument("--hints", action="store_true")
    job_validate.add_argument("-v", "--verbose", action="store_true")
    job_validate.set_defaults(run=_validate)
    _add_runner_verbs(verbs, job_verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "run", None)
    if run is None:
        getattr(args, "usage", parser).print_help()
        return 2
    from mljob.runner.problems import RunError

    try:
        return run(args)
    except RunError as err:
        print(str(err), file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `mljob job show -n X | head`: the reader left; that is not an error, and nothing more is to be written.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:
        # A bug of ours must still read as one line; MLJOB_DEBUG=1 shows where it happened.
        if os.environ.get("MLJOB_DEBUG"):
            raise
        print(f"mljob: internal error: {type(err).__name__}: {err} (MLJOB_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 70
    except KeyboardInterrupt:
        return 130
