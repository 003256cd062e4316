#!/usr/bin/env bash
# Run the whole test suite: sets up .venv, and as root starts a real local Slurm (with accounting),
# a real OpenSSH server standing in for a cluster's login node (scripts/local-sshd.sh: its own user,
# Python and virtualenv, the local Slurm in its login environment) and installs headless Chromium,
# so the integration tests run instead of skipping.
#   CRACKOPS_REQUIRE_SLURM=1 / CRACKOPS_REQUIRE_SSH=1 / CRACKOPS_REQUIRE_BROWSER=1 /
#   CRACKOPS_REQUIRE_DATA=1 / CRACKOPS_REQUIRE_MLFLOW=1 turn those skips (no Slurm, no sshd, no
#   Chromium, no sample photos, no mlflow server) into failures (CI sets all five).
# Extra arguments go to pytest, e.g.  scripts/test.sh -k compare -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/dev-setup.sh
if [ "$(id -u)" = 0 ]; then
  bash scripts/local-slurm.sh start >/dev/null || echo "warning: local Slurm did not start; Slurm tests will skip" >&2
  eval "$(bash scripts/local-slurm.sh env)"
  bash scripts/local-sshd.sh start >/dev/null || echo "warning: the local sshd did not start; ssh tests will skip" >&2
  eval "$(bash scripts/local-sshd.sh env)"
  if ! command -v chromium >/dev/null 2>&1; then
    (apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; }) ||
      echo "warning: chromium did not install; the report rendering test will skip" >&2
  fi
fi
export TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest -q "$@"
