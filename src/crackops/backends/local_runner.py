"""The process the local backend starts: ``python -m crackops.backends.local_runner SPEC``.

It writes the run contract's ``state.json`` beside the spec (``crackops.contract``) and calls the
pickled job function. Light imports only: the job function imports what it needs."""

from __future__ import annotations

import os
import pickle
import signal
import sys
import time
import traceback
from pathlib import Path

from crackops import contract


def main(spec_path: str) -> int:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})   # started while `submit` held Ctrl-C back
    contract.tighten_umask()
    spec_file = Path(spec_path)
    job_dir = spec_file.parent
    state = {"state": "RUNNING", "pid": os.getpid(), "started_at": time.time()}
    contract.write_state(job_dir, state)

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"cancelled (signal {signum})")

    signal.signal(signal.SIGTERM, on_term)
    try:
        with open(spec_file, "rb") as f:
            spec = pickle.load(f)
        spec["fn"](spec["config"])
    except KeyboardInterrupt as e:
        state.update(state="CANCELLED", reason=str(e) or "cancelled", exit_code="0:15", ended_at=time.time())
        contract.write_state(job_dir, state)
        print(f"crackops: job cancelled: {e}", file=sys.stderr, flush=True)
        return 143
    except BaseException as e:  # the job failed: say why, keep the traceback in the .err log
        traceback.print_exc()
        sys.stderr.flush()
        kind = "OUT_OF_MEMORY" if isinstance(e, MemoryError) else "FAILED"
        state.update(state=kind, reason=f"{type(e).__name__}: {e}"[:500], exit_code="1:0", ended_at=time.time())
        contract.write_state(job_dir, state)
        return 1
    state.update(state="COMPLETED", exit_code="0:0", ended_at=time.time())
    contract.write_state(job_dir, state)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
