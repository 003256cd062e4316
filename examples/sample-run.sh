#!/usr/bin/env bash
# The small real-data run quoted in examples/README.md: the seed CNN on the 400 + 400 sample photos
# of Özgenel's concrete crack images (../shared/data/concrete-sample), 96 px, up to 10 epochs,
# on this machine (local backend). Then heat maps for a few test photos.
#
#   examples/sample-run.sh                  # from the repository root
#   DATA=/path/to/concrete-sample examples/sample-run.sh
#   BACKEND=slurm examples/sample-run.sh    # the same run as a Slurm job
#
# Artifacts go to ./out/<job_id>/, logs to ./logs/ (or $CRACKOPS_OUT, $CRACKOPS_LOGS), heat maps to
# ./out/<job_id>/gradcam/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${DATA:-$ROOT/../shared/data/concrete-sample}"
BACKEND="${BACKEND:-local}"
CRACKOPS="${CRACKOPS:-crackops}"

if [ ! -d "$DATA/positive" ] || [ ! -d "$DATA/negative" ]; then
    echo "no sample data at $DATA (needs positive/ and negative/); set DATA=..." >&2
    exit 2
fi

start=$(date +%s)
job=$("$CRACKOPS" submit --backend "$BACKEND" --data "$DATA" --image-size 96 --epochs 10 --name sample-96px)
echo "job $job"
"$CRACKOPS" wait "$job"
"$CRACKOPS" collect "$job"
echo "submit -> collected: $(( $(date +%s) - start )) s"

# Predict on four of the run's own test photos (two of each class) and draw where it sees cracks.
out_dir=$("$CRACKOPS" status "$job" --json --no-refresh | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["out_dir"])')
mapfile -t picks < <(python3 - "$out_dir/predictions_test.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
neg = [r["path"] for r in rows if r["label"] == "0"][:2]
pos = [r["path"] for r in rows if r["label"] == "1"][:2]
print("\n".join(neg + pos))
EOF
)
"$CRACKOPS" predict "$job" "${picks[@]}" --explain "$out_dir/gradcam"
