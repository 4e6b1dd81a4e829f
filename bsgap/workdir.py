"""A run directory's identity: refuse to mix a different config into an existing run.

``config.json`` holds ``{"config": <the user's config>, "resolved": {...}, "environment": {...}}``.
Re-running the same config on the same directory resumes it; a different config is refused with the
differing fields named. Nothing existing is deleted or overwritten here.
"""
from __future__ import annotations

import json
import os
import platform

from bsgap import logbook
from bsgap.bucket_paths import MOUNTS_ENV, is_url
from bsgap.code_version import code_version


class WorkdirError(RuntimeError):
    """The workdir holds a different run (or foreign files where a run would be written)."""


def plain_config(config) -> dict:
    """The config as JSON-normal plain data (tuples become lists), for comparison and storage."""
    return json.loads(json.dumps(config.to_dict(), sort_keys=True))


# Config fields added after runs were first written, with the value that does what runs without
# the field did (none of them changes a result): a stored config without the field is the same run
# as a new one that leaves it at this value, so older run directories still resume.
# image_transfer='auto' sends float datasets (MNIST-1D, the 8x8 digits: every committed run) as
# before, bit for bit; uint8 images it normalizes on the device instead, which agrees with the
# host's normalization to float32 rounding (a few 1e-7; bsgap/data/transfer.py), not bitwise.
# Splits kept on the devices (device_resident_bytes) give the same batches bit for bit.
FIELDS_ADDED_LATER = {"data_threads": 48, "matmul_precision": None,
                      "memory_headroom_fraction": 0.1, "compilation_cache_dir": None,
                      "image_transfer": "auto", "device_resident_bytes": 64 << 20}


def absent_means_same(key: str, stored: dict, value) -> bool:
    """``key`` is missing from a stored config and ``value`` is what runs without it did."""
    return (key not in stored and key in FIELDS_ADDED_LATER
            and value == FIELDS_ADDED_LATER[key])


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{key}.")
        elif a != b and not (not prefix and absent_means_same(key, old, b)):
            out.append(f"{prefix}{key}: {a!r} in the run vs {b!r} now")
    return out


def refuse_url_workdir(workdir: str) -> None:
    """A gs:// (or other URL) run directory: refused, naming what to do instead."""
    if is_url(workdir):
        raise WorkdirError(
            f"workdir {workdir} is a URL; a run directory must be a local or mounted path (bsgap "
            "appends to its logs and locks it, which Cloud Storage objects do not allow). Mount "
            "the bucket with gcsfuse (launch/tpu_vm.sh install does) and pass the mounted path; "
            f"with {MOUNTS_ENV}=MOUNT=gs://BUCKET[/PREFIX] the checkpoints still go straight to "
            "the bucket (bsgap/bucket_paths.py)")


def check_workdir(workdir: str, config) -> str:
    """'new' for an empty/absent dir, 'resume' when it holds this same config."""
    path = os.path.join(workdir, logbook.CONFIG_FILE)
    if not os.path.exists(path):
        ours = [f for f in (logbook.METRICS_FILE, logbook.EVAL_FILE, logbook.SUMMARY_FILE,
                            "checkpoints") if os.path.exists(os.path.join(workdir, f))]
        if ours:
            raise WorkdirError(f"workdir {workdir} has {ours} but no {logbook.CONFIG_FILE}; "
                               "refusing to write a run over files of unknown origin. Use a new "
                               "--workdir")
        return "new"
    stored = logbook.read_json(path).get("config", {})
    differences = _diff(stored, plain_config(config))
    if differences:
        raise WorkdirError(
            f"workdir {workdir} holds a run with a different config, so it is neither resumed nor "
            f"overwritten. Differences: {'; '.join(differences)}. Use a new --workdir, or rerun "
            "with the run's own config to resume it")
    return "resume"


def workdir_state(workdir: str, config) -> dict:
    """``{'mode': check_workdir(...), 'summary': summary.json of a finished run, else None}``:
    what the trainer's process 0 decides for every process (bsgap/agreement.py)."""
    mode = check_workdir(workdir, config)
    path = os.path.join(workdir, logbook.SUMMARY_FILE)
    summary = logbook.read_json(path) if mode == "resume" and os.path.exists(path) else None
    if summary is not None and summary.get("status") not in logbook.FINAL_STATUSES:
        summary = None
    return {"mode": mode, "summary": summary}


def environment(num_devices: int, trials_in_program: int = 1) -> dict:
    """Where a run ran: devices, platform and library versions (config.json's 'environment')."""
    import flax
    import jax
    import optax

    return {"num_devices": num_devices, "num_processes": jax.process_count(),
            "platform": jax.devices()[0].platform, "device_kind": jax.devices()[0].device_kind,
            "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
            "python": platform.python_version(), "trials_in_program": trials_in_program,
            "code": code_version()}


def finished_summary(workdir: str, config) -> dict | None:
    """The summary of a run that ``workdir`` holds *finished* with this same config (a final
    status in summary.json), else None: the CLI's quick "nothing to do" without JAX."""
    summary_path = os.path.join(workdir, logbook.SUMMARY_FILE)
    if not os.path.isfile(summary_path) or not os.path.isfile(
            os.path.join(workdir, logbook.CONFIG_FILE)):
        return None
    try:
        return workdir_state(workdir, config)["summary"]
    except (WorkdirError, OSError, ValueError):
        return None   # the full path reports it
