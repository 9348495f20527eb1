"""Entry point: `mljob lsp` starts the language server, every other verb is the runner's CLI.

A runner verb is first offered to the resident runner (a warm mljob process, see `runner/resident_client.py`); when
there is none, or it declines, the call runs here. This module and that client import nothing heavy, because for a
short job the start-up of this process is most of what mljob adds.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["lsp"]:
        # Imported lazily so that runner verbs never pay for pygls.
        from mljob.server.main import main as lsp_main

        return lsp_main(args[1:])
    if args[:1] == ["daemon"]:
        from mljob.runner.resident import command

        return command(args[1:])
    if argv is None:  # a process of its own (not a call from Python code, which keeps its own stdio)
        from mljob.runner import resident_client

        if resident_client.enabled():
            try:
                code = resident_client.call(args)
            except resident_client.Unavailable as why:
                if os.environ.get("MLJOB_DEBUG"):
                    print(f"mljob: running in this process: {why}", file=sys.stderr)
            else:
                # Nothing of this process is left to tidy: skip the interpreter's teardown (a few ms).
                for stream in (sys.stdout, sys.stderr):
                    stream.flush()
                os._exit(code)
    from mljob.runner.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
