"""Entry point: `mljob lsp` starts the language server, every other verb is the runner's CLI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["lsp"]:
        # Imported lazily so that runner verbs never pay for pygls.
        from mljob.server.main import main as lsp_main

        return lsp_main(args[1:])
    from mljob.runner.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
