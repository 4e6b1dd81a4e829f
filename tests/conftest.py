"""Test session setup: 8 simulated CPU devices, and a thread pool big enough for their collectives.

Both variables must be set before jax is imported (DESIGN.md, known traps: with fewer than ~16
XLA CPU threads, collectives over 8 fake devices deadlock on a 2-core machine).
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=8"
os.environ.setdefault("NPROC", "16")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", False)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A TFDS data dir with the embedded datasets built once per test session (offline)."""
    path = str(tmp_path_factory.mktemp("tfds"))
    import tensorflow_datasets as tfds

    import bsgap.data.builders  # noqa: F401  (registers the builders)

    for name in ("sklearn_digits", "mnist1d/small"):
        tfds.builder(name, data_dir=path).download_and_prepare()
    return path
