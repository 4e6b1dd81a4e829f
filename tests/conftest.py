"""Test session setup: 8 simulated CPU devices, and a thread pool big enough for their collectives.

Both variables must be set before jax is imported (DESIGN.md, known traps: with fewer than ~16
XLA CPU threads, collectives over 8 fake devices deadlock on a 2-core machine).
"""
import atexit
import os
import shutil
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=8"
os.environ.setdefault("NPROC", "16")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# One persistent compilation cache for the session, inherited by the subprocesses tests start (the
# SIGKILL, sweep and multi-process tests compile the same programs again in each process). A
# fresh directory per session: results never depend on what an earlier session cached.
_CACHE = tempfile.mkdtemp(prefix="bsgap-test-jax-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# The same programs with XLA's backend (LLVM) optimization turned down: on the 2-core CI machine
# compilation, not execution, is most of the suite's time, and this takes ~30% off it (BENCHMARKS.md,
# "The test suite"). Every assertion compares programs compiled the same way or against closed
# forms, so none depends on the optimization level; BSGAP_TEST_FULL_OPTIMIZATION=1 compiles as a
# user's run does (as every test ran before this setting).
if os.environ.get("BSGAP_TEST_FULL_OPTIMIZATION", "0") != "1":
    os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
    # Two XLA:CPU settings, only for the jaxlib they were measured on (an XLA that no longer
    # knows a flag in XLA_FLAGS aborts), each unless XLA_FLAGS already sets it:
    # - the older fusion emitter compiles faster than the MLIR fusion emitters: the tiny
    #   ResNet-50 step 10.4 s -> 6.6 s, three test files 234 s -> 182 s (BENCHMARKS.md);
    # - dots and convolutions run on one thread each: with 8 simulated devices on 2 cores,
    #   Eigen's intra-op threads only contend with the devices' own and with the other test
    #   worker (the tiny paper configs 48 -> 40 s, the suite 634 -> 587 s, BENCHMARKS.md
    #   "Start-up and CPU threads").
    from importlib.metadata import version as _version
    if _version("jaxlib").startswith("0.10."):
        for _flag in ("xla_cpu_use_fusion_emitters", "xla_cpu_multi_thread_eigen"):
            if _flag not in os.environ["XLA_FLAGS"]:
                os.environ["XLA_FLAGS"] += f" --{_flag}=false"


import jax  # noqa: E402

jax.config.update("jax_enable_x64", False)

import pytest  # noqa: E402


# The longest files first, as measured (seconds per file on the 2-core machine, the suite under
# its two workers, 2026-12-02: test_configs 81 ... test_trial_stopping 15). Each worker takes the
# next file when it is done with one, so with the long files first the short ones even out the
# end: in xdist's default order (files with the most tests first), one worker finished 44 s after
# the other. Files not named here follow in alphabetical order; no test's result depends on it.
LONGEST_FIRST = (
    "test_configs.py", "test_figures.py", "test_trainer.py", "test_accumulation.py",
    "test_data_memory.py", "test_trials.py", "test_sweep_run.py", "test_interrupt.py",
    "test_advise_cli.py", "test_run_records.py", "test_sweep_groups.py", "test_optim_models.py",
    "test_analysis_curvature.py", "test_damaged_files.py", "test_data_imagenet.py",
    "test_invariance.py", "test_collect.py", "test_cli_newcomer.py", "test_multiprocess.py",
    "test_pipeline_trainer.py", "test_applied_lr.py", "test_curvature_mlp64.py",
    "test_image_transfer.py", "test_trial_stopping.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))   # stable: keeps the rest


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A TFDS data dir with the embedded datasets built once per test session (offline)."""
    path = str(tmp_path_factory.mktemp("tfds"))
    import tensorflow_datasets as tfds

    import bsgap.data.builders  # noqa: F401  (registers the builders)

    for name in ("sklearn_digits", "mnist1d/small"):
        tfds.builder(name, data_dir=path).download_and_prepare()
    return path
