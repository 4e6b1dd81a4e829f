#!/bin/bash
# Cloud TPU VM launcher for bsgap: create a TPU VM (or a queued resource), install the package on
# every worker, and run sweeps or single trials on all workers at once, with the data and the run
# directories on a Cloud Storage bucket mounted at the same path on every worker (gcsfuse).
#
#   launch/tpu_vm.sh create | create-queued | install | prepare-data DATASET |
#                    sweep SWEEP [launch.sweep flags] | trial SWEEP INDEX [flags] |
#                    ssh COMMAND | delete | delete-queued
#
# Settings (environment):
#   TPU_NAME         TPU VM name (queued resources: also the resource id)    required
#   ZONE             e.g. us-central2-b                                      required
#   BUCKET           gs://bucket[/prefix] for data and runs                  install, sweep, trial
#   ACCELERATOR_TYPE default v4-8 (v4-32 etc.: several workers, one process each)
#   RUNTIME_VERSION  default tpu-ubuntu2204-base
#   PROJECT          gcloud project (default: gcloud's configured one)
#   SPOT=1           spot capacity
#   PYTHON_VERSION   Python for the workers' virtual environment, default 3.11
#   SWEEP_NAME       runs go to $MOUNT/runs/$SWEEP_NAME (default: the sweep file's name)
#   DRY_RUN=1        print every gcloud command instead of running it
# See launch/README.md for a walk-through.
set -euo pipefail

MOUNT=/mnt/bsgap                     # where every worker mounts $BUCKET
# shellcheck disable=SC2016  # $HOME is expanded by the workers' shell, not here
VENV='$HOME/bsgap-venv'
# shellcheck disable=SC2016
REMOTE_REPO='$HOME/bsgap'

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
runtime=${RUNTIME_VERSION:-tpu-ubuntu2204-base}

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
  cmd="cd $REMOTE_REPO && $VENV/bin/python -m launch.sweep --sweep=$(printf '%q' "$sweep")"
  cmd+=" --root=$MOUNT/runs/$name --multihost --set=data_dir=$MOUNT/tensorflow_datasets"
  for arg in "$@"; do
    cmd+=" $(printf '%q' "$arg")"
  done
  printf '%s' "$cmd"
}

cmd=${1:-}
if [[ -z "$cmd" ]]; then
  sed -n '2,22p' "$0" >&2
  exit 2
fi
shift

case "$cmd" in
  create)
    need TPU_NAME ZONE
    run gcloud compute tpus tpu-vm create "$TPU_NAME" --zone="$ZONE" "${project_flag[@]}" \
      --accelerator-type="$accelerator" --version="$runtime" "${spot_flag[@]}"
    ;;
  create-queued)
    need TPU_NAME ZONE
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
    on_all_workers "$(sweep_command "$sweep" "$@")"
    ;;
  trial)
    need TPU_NAME ZONE
    sweep=${1:?trial SWEEP INDEX [launch.sweep flags]}
    index=${2:?trial SWEEP INDEX [launch.sweep flags]}
    shift 2
    on_all_workers "$(sweep_command "$sweep" --trial="$index" "$@")"
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
    sed -n '2,22p' "$0" >&2
    exit 2
    ;;
esac
