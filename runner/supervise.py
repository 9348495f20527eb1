"""The detached runner of `mljob job create` without `--stream`: `python -m mljob.runner.supervise RUN_DIR`.

It runs in its own session (a closed terminal does not stop it); its own messages go to RUN_DIR/runner.log.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mljob.runner.execute import Execution, resume


def main(argv: list[str]) -> int:
    if (Path(argv[0]) / "sweep.json").exists():
        from mljob.runner.sweep.verbs import drive_detached

        return drive_detached(Path(argv[0]))
    submission = resume(Path(argv[0]))
    outcome = Execution(submission, echo=None, progress=lambda m: print(m, flush=True)).execute()
    print(f"{submission.plan.name}: {outcome.status}" + (f" ({outcome.reason})" if outcome.reason else ""))
    return 0 if outcome.status == "Completed" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
