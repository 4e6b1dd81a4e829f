#!/bin/bash
# Runs on every TPU VM worker (launch/tpu_vm.sh install): a Python virtual environment with bsgap
# and jax[tpu], and the bucket mounted with gcsfuse at the same path on every worker.
#
#   bash launch/tpu_worker_setup.sh gs://BUCKET[/PREFIX] MOUNT [PYTHON_VERSION]
#
# Directory renames must work on the mount (orbax commits a checkpoint by renaming its temporary
# directory), hence --rename-dir-limit. The mount caches no metadata: every worker must see
# another's summary.json or checkpoint at once, not a minute later (gcsfuse caches stat and type
# lookups for 60 s and missing files for 5 s by default). DRY_RUN=1 prints the commands instead of
# running them.
set -euo pipefail

bucket_url=${1:?usage: tpu_worker_setup.sh gs://BUCKET[/PREFIX] MOUNT [PYTHON_VERSION]}
mount_point=${2:?usage: tpu_worker_setup.sh gs://BUCKET[/PREFIX] MOUNT [PYTHON_VERSION]}
python_version=${3:-3.11}
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=$HOME/bsgap-venv

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

path=${bucket_url#gs://}
bucket=${path%%/*}
prefix=""
if [[ "$path" == */* ]]; then
  prefix=${path#*/}
fi

# Python >= 3.11 (the TPU images ship an older one): a uv-managed interpreter in a venv.
run python3 -m pip install --user --upgrade uv
run "$HOME/.local/bin/uv" venv --python "$python_version" "$venv"
run "$HOME/.local/bin/uv" pip install --python "$venv/bin/python" -e "$repo" \
  'jax[tpu]>=0.10.2,<0.12'

# gcsfuse from Google's apt repository (the documented install).
if ! command -v gcsfuse >/dev/null; then
  codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
  run sudo install -d -m 0755 /etc/apt/keyrings
  run sudo curl -fsSL -o /etc/apt/keyrings/gcsfuse.asc \
    https://packages.cloud.google.com/apt/doc/apt-key.gpg
  run sudo bash -c "echo 'deb [signed-by=/etc/apt/keyrings/gcsfuse.asc] https://packages.cloud.google.com/apt gcsfuse-$codename main' > /etc/apt/sources.list.d/gcsfuse.list"
  run sudo apt-get update
  run sudo apt-get install -y gcsfuse
fi

if mountpoint -q "$mount_point"; then
  echo "$mount_point is already mounted"
else
  run sudo mkdir -p "$mount_point"
  run sudo chown "$(id -u):$(id -g)" "$mount_point"
  only_dir=()
  if [[ -n "$prefix" ]]; then
    only_dir=(--only-dir "$prefix")
  fi
  # No metadata caching, with the flags this gcsfuse knows: --metadata-cache-ttl-secs (2.0+; its
  # --stat-cache-ttl/--type-cache-ttl predecessors are deprecated) and
  # --metadata-cache-negative-ttl-secs (2025+; before it, missing files used the same TTL).
  help=$(gcsfuse --help 2>&1 || true)
  no_cache=(--stat-cache-ttl=0s --type-cache-ttl=0s)
  if [[ $help == *--metadata-cache-ttl-secs* ]]; then
    no_cache=(--metadata-cache-ttl-secs=0)
  fi
  if [[ $help == *--metadata-cache-negative-ttl-secs* ]]; then
    no_cache+=(--metadata-cache-negative-ttl-secs=0)
  fi
  run gcsfuse --implicit-dirs --rename-dir-limit=1000000 "${no_cache[@]}" "${only_dir[@]}" \
    "$bucket" "$mount_point"
fi
run mkdir -p "$mount_point/runs" "$mount_point/tensorflow_datasets"
