#!/bin/bash
# Cloud TPU VM launcher for bsgap: create a TPU VM (or a queued resource), install the package on
# every worker, and run sweeps or single trials on all workers at once, with the data and the run
# directories on a Cloud Storage bucket mounted at the same path on every worker (gcsfuse).
#
#   launch/tpu_vm.sh create | create-queued | install | prepare-data DATASET |
#                    sweep SWEEP [launch.sweep flags] | trial SWEEP INDEX [flags] |
#                    status | logs [JOB] | stop [JOB] | ssh COMMAND | delete | delete-queued
#
# `sweep` and `trial` start the job detached on every worker (setsid + nohup: a dropped SSH
# session does not stop it) and return; each worker logs to ~/bsgap-jobs/JOB.log. `status` says
# per worker whether each job runs or how it ended, `logs` prints the last LINES (default 40)
# lines of each worker's log, `stop` sends the job's launch.sweep SIGTERM once (its trials checkpoint and stop).
#
# Settings (environment):
#   TPU_NAME         TPU VM name (queued resources: also the resource id)    required
#   ZONE             e.g. us-central2-b                                      required
#   BUCKET           gs://bucket[/prefix] for data and runs                  install, sweep, trial
#   ACCELERATOR_TYPE default v4-8 (v4-32 etc.: several workers, one process each)
#   RUNTIME_VERSION  default from ACCELERATOR_TYPE (https://cloud.google.com/tpu/docs/runtimes):
#                    v2/v3/v4 tpu-ubuntu2204-base, v5litepod (v5e) v2-alpha-tpuv5-lite,
#                    v5p v2-alpha-tpuv5, v6e v2-alpha-tpuv6e
#   PROJECT          gcloud project (default: gcloud's configured one)
#   SPOT=1           spot capacity
#   PYTHON_VERSION   Python for the workers' virtual environment, default 3.11
#   SWEEP_NAME       runs go to $MOUNT/runs/$SWEEP_NAME (default: the sweep file's name)
#   DATA_DIR         the trials' TFDS data_dir, default $MOUNT/tensorflow_datasets (the bucket's
#                    tensorflow_datasets/ through the mount); $BUCKET/tensorflow_datasets reads
#                    it from Cloud Storage directly
#   LINES            lines per worker for `logs` (default 40)
#   DRY_RUN=1        print every gcloud command instead of running it
# See launch/README.md for a walk-through.
set -euo pipefail

MOUNT=/mnt/bsgap                     # where every worker mounts $BUCKET
# shellcheck disable=SC2016  # $HOME is expanded by the workers' shell, not here
VENV='$HOME/bsgap-venv'
# shellcheck disable=SC2016
REMOTE_REPO='$HOME/bsgap'
# shellcheck disable=SC2016
JOBS='$HOME/bsgap-jobs'              # per worker: JOB.log, JOB.pid, JOB.exit
# This worker's index (0, 1, ...), from the TPU VM's metadata server (what JAX reads too).
# shellcheck disable=SC2016
WORKER_ID='$(curl -sf -H "Metadata-Flavor: Google" http://metadata.google.internal/computeMetadata/v1/instance/attributes/agent-worker-number || echo unknown)'

# DRY_RUN=1: print the command (each argument shell-quoted only where it needs to be).
run() {
  if [[ -n "${DRY_RUN:-}" ]]; then
    local arg words=()
    for arg in "$@"; do
      if [[ $arg =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
        words+=("$arg")
      else
        words+=("${arg@Q}")
      fi
    done
    echo "${words[*]}"
  else
    "$@"
  fi
}

need() {
  local name
  for name in "$@"; do
    if [[ -z "${!name:-}" ]]; then
      echo "tpu_vm.sh: set $name (see the header of this script)" >&2
      exit 2
    fi
  done
}

project_flag=()
if [[ -n "${PROJECT:-}" ]]; then
  project_flag=(--project="$PROJECT")
fi
spot_flag=()
if [[ -n "${SPOT:-}" ]]; then
  spot_flag=(--spot)
fi
accelerator=${ACCELERATOR_TYPE:-v4-8}

# The TPU software version Google's docs name for an accelerator type's generation.
runtime_for() {
  case $1 in
    v2-* | v3-* | v4-*) echo tpu-ubuntu2204-base ;;
    v5litepod-* | v5e-*) echo v2-alpha-tpuv5-lite ;;
    v5p-*) echo v2-alpha-tpuv5 ;;
    v6e-*) echo v2-alpha-tpuv6e ;;
    *) return 1 ;;
  esac
}

runtime_version() {
  if [[ -n "${RUNTIME_VERSION:-}" ]]; then
    echo "$RUNTIME_VERSION"
  elif ! runtime_for "$accelerator"; then
    echo "tpu_vm.sh: no default runtime for ACCELERATOR_TYPE=$accelerator (known: v2-*, v3-*," \
      "v4-*, v5litepod-*, v5p-*, v6e-*); set RUNTIME_VERSION" \
      "(https://cloud.google.com/tpu/docs/runtimes)" >&2
    exit 2
  fi
}

# Run a command on every worker of the TPU VM at once.
on_all_workers() {
  run gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" "${project_flag[@]}" \
    --worker=all --command="$1"
}

# The launch.sweep invocation every worker runs (all workers start the same trial together).
sweep_command() {
  local sweep=$1
  shift
  local name cmd arg
  name=${SWEEP_NAME:-$(basename "$sweep" .py)}
  # Checkpoints go straight to the bucket, not through the mount (bsgap/bucket_paths.py).
  local mounts=""
  if [[ -n "${BUCKET:-}" ]]; then
    mounts="BSGAP_GCS_MOUNTS=$(printf '%q' "$MOUNT=$BUCKET") "
  fi
  cmd="cd $REMOTE_REPO && $mounts$VENV/bin/python -m launch.sweep --sweep=$(printf '%q' "$sweep")"
  cmd+=" --root=$MOUNT/runs/$name --multihost"
  cmd+=" --set=data_dir=$(printf '%q' "${DATA_DIR:-$MOUNT/tensorflow_datasets}")"
  for arg in "$@"; do
    cmd+=" $(printf '%q' "$arg")"
  done
  printf '%s' "$cmd"
}

# A job name from the sweep's (and the trial's) name: what ~/bsgap-jobs/ files are called.
job_name() {
  local name=${SWEEP_NAME:-$(basename "$1" .py)}
  printf '%s' "$name${2:+-trial$2}"
}

# The remote command that starts $2 detached as job $1 on a worker: in its own session (setsid),
# immune to the SSH session's hangup (nohup), stdin/stdout/stderr off the SSH channel, logging to
# ~/bsgap-jobs/JOB.log and leaving JOB.exit with its exit status. Refuses a job still running.
detached() {
  local job=$1 cmd=$2 dir=$JOBS
  local body="$cmd; echo \$? > $dir/$job.exit"
  # trap '' HUP first: the job must not die of the session's hangup before setsid has run.
  printf '%s' "trap '' HUP; w=$WORKER_ID; mkdir -p $dir || exit 1; cd \$HOME || exit 1;" \
    " if [ -f $dir/$job.pid ] && kill -0 \$(cat $dir/$job.pid) 2>/dev/null; then" \
    " echo \"worker \$w: $job is already running (pid \$(cat $dir/$job.pid))\"; exit 1; fi;" \
    " rm -f $dir/$job.exit; echo \"== \$(date -u +%FT%TZ) worker \$w\" >> $dir/$job.log;" \
    " BSGAP_WORKER_ID=\$w setsid nohup bash -c $(printf '%q' "$body")" \
    " >> $dir/$job.log 2>&1 < /dev/null & echo \$! > $dir/$job.pid;" \
    " echo \"worker \$w: started $job (pid \$!), log ~/bsgap-jobs/$job.log\""
}

# Per worker: every job (or JOB) running, or how it ended.
status_command() {
  local dir=$JOBS
  printf '%s' "w=$WORKER_ID; found=0; for p in $dir/${1:-*}.pid; do [ -f \"\$p\" ] || continue;" \
    " found=1; j=\$(basename \"\$p\" .pid); pid=\$(cat \"\$p\");" \
    " if kill -0 \"\$pid\" 2>/dev/null; then echo \"worker \$w: \$j running (pid \$pid)\";" \
    " elif [ -f $dir/\$j.exit ]; then echo \"worker \$w: \$j exited with status \$(cat $dir/\$j.exit)\";" \
    " else echo \"worker \$w: \$j stopped without an exit status (killed, or the VM restarted)\"; fi;" \
    " done; [ \$found = 1 ] || echo \"worker \$w: no jobs\""
}

cmd=${1:-}
if [[ -z "$cmd" ]]; then
  sed -n '2,32p' "$0" >&2
  exit 2
fi
shift

case "$cmd" in
  create)
    need TPU_NAME ZONE
    runtime=$(runtime_version)
    run gcloud compute tpus tpu-vm create "$TPU_NAME" --zone="$ZONE" "${project_flag[@]}" \
      --accelerator-type="$accelerator" --version="$runtime" "${spot_flag[@]}"
    ;;
  create-queued)
    need TPU_NAME ZONE
    runtime=$(runtime_version)
    run gcloud compute tpus queued-resources create "$TPU_NAME" --zone="$ZONE" \
      "${project_flag[@]}" --node-id="$TPU_NAME" --accelerator-type="$accelerator" \
      --runtime-version="$runtime" "${spot_flag[@]}"
    run gcloud compute tpus queued-resources describe "$TPU_NAME" --zone="$ZONE" \
      "${project_flag[@]}" --format='value(state.state)'
    ;;
  install)
    need TPU_NAME ZONE BUCKET
    # The committed tree of this checkout, copied to every worker and installed there.
    archive=${TMPDIR:-/tmp}/bsgap-$TPU_NAME.tar.gz
    run git -C "$(dirname "$0")/.." archive --format=tar.gz -o "$archive" HEAD
    run gcloud compute tpus tpu-vm scp "$archive" "$TPU_NAME":bsgap.tar.gz --zone="$ZONE" \
      "${project_flag[@]}" --worker=all
    on_all_workers "rm -rf $REMOTE_REPO && mkdir -p $REMOTE_REPO && tar -xzf bsgap.tar.gz -C $REMOTE_REPO && bash $REMOTE_REPO/launch/tpu_worker_setup.sh $(printf '%q' "$BUCKET") $MOUNT ${PYTHON_VERSION:-3.11}"
    ;;
  prepare-data)
    need TPU_NAME ZONE
    dataset=${1:?prepare-data DATASET (e.g. mnist1d/small)}
    # Worker 0 only: builds an embedded dataset (or checks a prepared one) on the bucket once,
    # so that the workers of a run never build it concurrently.
    run gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" "${project_flag[@]}" \
      --worker=0 --command="cd $REMOTE_REPO && $VENV/bin/python -c \"import sys; from bsgap.data import load_dataset; load_dataset(sys.argv[1], data_dir=sys.argv[2])\" $(printf '%q' "$dataset") $MOUNT/tensorflow_datasets"
    ;;
  sweep)
    need TPU_NAME ZONE
    sweep=${1:?sweep SWEEP [launch.sweep flags]}
    shift
    on_all_workers "$(detached "$(job_name "$sweep")" "$(sweep_command "$sweep" "$@")")"
    ;;
  trial)
    need TPU_NAME ZONE
    sweep=${1:?trial SWEEP INDEX [launch.sweep flags]}
    index=${2:?trial SWEEP INDEX [launch.sweep flags]}
    shift 2
    on_all_workers "$(detached "$(job_name "$sweep" "$index")" \
      "$(sweep_command "$sweep" --trial="$index" "$@")")"
    ;;
  status)
    need TPU_NAME ZONE
    on_all_workers "$(status_command "${1:-}")"
    ;;
  logs)
    need TPU_NAME ZONE
    lines=${LINES:-40}
    [[ $lines =~ ^[0-9]+$ ]] || { echo "tpu_vm.sh: LINES=$lines is not a number" >&2; exit 2; }
    on_all_workers "w=$WORKER_ID; for f in $JOBS/${1:-*}.log; do [ -f \"\$f\" ] || continue; echo \"== worker \$w: \$f\"; tail -n $lines \"\$f\"; done"
    ;;
  stop)
    need TPU_NAME ZONE
    on_all_workers "w=$WORKER_ID; for p in $JOBS/${1:-*}.pid; do [ -f \"\$p\" ] || continue; pid=\$(cat \"\$p\"); kill -0 \"\$pid\" 2>/dev/null && pkill -TERM -P \"\$pid\" && echo \"worker \$w: sent SIGTERM to \$(basename \"\$p\" .pid) (pid \$pid)\"; done; true"
    ;;
  ssh)
    need TPU_NAME ZONE
    on_all_workers "${1:?ssh COMMAND}"
    ;;
  delete)
    need TPU_NAME ZONE
    run gcloud compute tpus tpu-vm delete "$TPU_NAME" --zone="$ZONE" "${project_flag[@]}" --quiet
    ;;
  delete-queued)
    need TPU_NAME ZONE
    run gcloud compute tpus queued-resources delete "$TPU_NAME" --zone="$ZONE" \
      "${project_flag[@]}" --force --quiet
    ;;
  *)
    echo "tpu_vm.sh: unknown command '$cmd'" >&2
    sed -n '2,32p' "$0" >&2
    exit 2
    ;;
esac
