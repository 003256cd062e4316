"""The crackops Python API: what the CLI calls, and what scripts and notebooks can call.

    from crackops import api
    config = api.config_from_profile("default", data_dir="datasets/concrete", epochs=5)
    resources, _ = api.resolve_resources("default", mem="8G")
    run = api.submit(config, resources)
    runs = api.wait_until_done([run.job_id])      # collected when they completed
    cmp = api.compare([run.job_id])
    api.report([run.job_id], "report.html")
    rows = api.predict(run.job_id, ["photos/"]).rows

Every CLI command is one call here plus formatting: anything the CLI can do, Python can do the
same way. Nothing here imports TensorFlow (``predict`` does, when it runs the model).

The package is split by concern; every name is importable from ``crackops.api``:

- :mod:`~crackops.api.checks`: data, profiles and flags checked before anything is submitted
- :mod:`~crackops.api.submission`: the one submission pipeline (check, note, submit, record), dry runs
- :mod:`~crackops.api.handles`: ``submit`` and ``run`` return a run's handle (``wait``, ``result``, ``logs``, ``cancel``)
- :mod:`~crackops.api.states`: states refreshed under each backend's polling policy, wait, logs, cancel
- :mod:`~crackops.api.adopt`: submissions whose submitter died, found and recorded
- :mod:`~crackops.api.retry`, :mod:`~crackops.api.reruns`: rerun by cause, ``--retries``, resume
- :mod:`~crackops.api.results`: collect, compare, report, import (``crackops.importer``)
- :mod:`~crackops.api.predicting`: predict with a run's model
- :mod:`~crackops.api.sweeping`: sweeps and their handle
- :mod:`~crackops.api.tracking`: export to MLflow, TensorBoard over some runs
"""

from crackops.api.adopt import ADOPT_AFTER_S, Adoption, adopt_submissions
from crackops.api.checks import (EXACT_SPLIT_CHECK_BELOW, check_data_dir, check_plot_path, check_retries,
                                 check_training_data, config_from_profile, profiles, resolve_resources)
from crackops.api.predicting import PredictResult, Progress, model_path, predict
from crackops.api.reruns import rerun, resume
from crackops.api.results import (CollectReport, ReportResult, collect, collect_finished, compare,
                                  default_report_name, import_runs, report, runs_with_metrics, wait_until_done)
from crackops.api.retry import AUTO_RETRY_STATES, RERUN_LEASE_S
from crackops.api.states import (StatusReport, cancel, epoch_progress, get_run, log_path, read_log, refresh,
                                 status, wait)
from crackops.api.handles import RunHandle, run, submit
from crackops.api.submission import TRAINING_FN, DryRun, dry_run, makes_artifacts
from crackops.errors import BackendError, CheckError, CrackopsError, NotFoundError, StateError, UsageError
from crackops.api.sweeping import (SweepHandle, compare_sweeps, get_sweep, parse_grid, sweep, sweep_dry_run,
                                   sweep_job_ids, sweep_overview, sweeps)
from crackops.api.tracking import export_mlflow, tensorboard_logdirs

__all__ = [
    "BackendError", "CheckError", "CrackopsError", "NotFoundError", "StateError", "UsageError",
    "ADOPT_AFTER_S", "AUTO_RETRY_STATES", "Adoption", "CollectReport", "DryRun", "EXACT_SPLIT_CHECK_BELOW",
    "PredictResult", "Progress", "RERUN_LEASE_S", "ReportResult", "StatusReport", "SweepHandle", "TRAINING_FN",
    "adopt_submissions", "cancel", "check_data_dir", "check_plot_path", "check_retries", "check_training_data",
    "collect", "collect_finished", "compare", "compare_sweeps", "config_from_profile", "default_report_name",
    "dry_run", "epoch_progress", "get_run", "get_sweep", "import_runs", "log_path", "makes_artifacts", "model_path", "parse_grid",
    "predict", "profiles", "read_log", "refresh", "report", "rerun", "resolve_resources", "resume",
    "runs_with_metrics", "RunHandle", "run", "status", "submit", "sweep", "sweep_dry_run", "sweep_job_ids", "sweep_overview", "sweeps", "wait", "wait_until_done",
    "export_mlflow", "tensorboard_logdirs",
]
