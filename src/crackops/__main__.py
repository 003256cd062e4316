"""``python -m crackops`` and the ``crackops`` command. A Ctrl-C while the command is still starting
(importing) ends it with one line and exit 130, nothing done; then ``crackops.cli.main`` takes over."""

import os
import signal


def _starting(signum, frame):   # noqa: ANN001
    os.write(2, b"interrupted: nothing was done\n")
    os._exit(130)


def run() -> None:
    signal.signal(signal.SIGINT, _starting)
    from crackops.cli import main

    main()


if __name__ == "__main__":
    run()
