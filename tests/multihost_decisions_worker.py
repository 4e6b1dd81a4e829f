"""One of the two processes of tests/test_multihost_decisions.py (2 processes x 1 CPU device
over localhost). Process 1 is given a different view of the shared filesystem -- it sees empty
run directories and no checkpoints, as a host whose gcsfuse/NFS caches lag behind would -- and
must still do what process 0 decides.

    python tests/multihost_decisions_worker.py PORT PROCESS_ID SPEC.json OUT.json
"""
import json
import sys


def main(port: int, process_id: int, spec_path: str, out_path: str) -> None:
    import jax

    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=process_id)
    spec = json.load(open(spec_path))
    out = {"process": jax.process_index(), "devices": jax.device_count()}

    # Part 5: an embedded dataset missing from data_dir is built by process 0 alone, and the
    # others read it only once it is there. A stand-in for TFDS's builder (the real one is
    # tested in test_multihost_decisions.py; here it would cost each process TensorFlow's
    # import): building takes 1 s, so a process that did not wait would find nothing.
    import os
    import time

    import tensorflow_datasets as tfds

    from bsgap.data import catalog

    built = []

    class Builder:
        def __init__(self, name, data_dir):
            self.name, self.data_dir_root = name, data_dir
            self.data_dir = os.path.join(data_dir, name, "1.0.0")

        def is_prepared(self):
            return os.path.exists(os.path.join(self.data_dir, "dataset_info.json"))

        def download_and_prepare(self):
            built.append(self.name)
            time.sleep(1.0)
            os.makedirs(self.data_dir)
            open(os.path.join(self.data_dir, "dataset_info.json"), "w").close()

    real_builder, tfds.builder = tfds.builder, Builder
    catalog.prepared_builder("sklearn_digits", data_dir=spec["empty_data_dir"], process_count=2)
    tfds.builder = real_builder
    out["built"] = built

    # Part 7: process 1 sees every run directory empty and no checkpoint.
    import ml_collections
    import numpy as np

    from bsgap import trainer as trainer_module
    from bsgap.checkpoint import Checkpointer
    from launch import agree, state

    if process_id == 1:
        trainer_module.workdir_state = lambda workdir, config: {"mode": "new", "summary": None}
        Checkpointer.all_steps = lambda self: []
        state.trial_state = agree.trial_state = lambda workdir, expected: state.TrialState("new")
    config = ml_collections.ConfigDict(spec["config"])
    finished = trainer_module.Trainer(config, spec["finished"])
    out["finished_summary"] = finished.run()
    out["finished_trials_built"] = len(finished.trials)
    # The interrupted run: set up and restored (not trained further: that is test_restore's).
    interrupted = trainer_module.Trainer(config, spec["interrupted"])
    interrupted._build()
    interrupted._restore()
    out["interrupted_modes"] = interrupted.modes
    out["interrupted_start_step"] = interrupted.trials[0].start_step
    params = jax.tree_util.tree_leaves(jax.device_get(interrupted.trial_state(0).params))
    out["interrupted_param_sums"] = [float(np.asarray(p, np.float64).sum()) for p in params]
    interrupted.trials[0].checkpointer.close()
    interrupted.release()
    out["runner_states"] = [s.kind for s in agree.agreed_trial_states(
        [(spec[name], spec["expected"]) for name in ("finished", "interrupted", "new")])]
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
