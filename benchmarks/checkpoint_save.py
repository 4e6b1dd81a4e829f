"""Checkpoint saves of a replicated train state: bsgap's Checkpointer against plain orbax.

The state is ResNet-50's (ImageNet, 1000 classes): its parameters, one momentum buffer per
parameter and the BN statistics, shapes from ``jax.eval_shape`` of bsgap's model (no compile),
values random, replicated over N JAX CPU devices as the trainer keeps it. The peer is what a
user would write: ``ocp.CheckpointManager`` with ``StandardSave`` and orbax's default handlers
(which split each replicated array over its replicas: a slice per leaf and device). Each
(mode, N) runs in a fresh process, so the first save pays what a run's first save pays.

    python benchmarks/checkpoint_save.py --devices 2,8 --saves 3 --out bench.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(mode: str, devices: int, saves: int) -> dict:
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    sys.path.insert(0, ROOT)
    import jax
    import numpy as np
    import orbax.checkpoint as ocp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from bsgap.checkpoint import Checkpointer
    from bsgap.models import create_model

    model = create_model("resnet50", num_classes=1000)
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                               jax.numpy.zeros((1, 224, 224, 3)), train=False))
    tree = {"params": shapes["params"], "momentum": shapes["params"],
            "batch_stats": shapes["batch_stats"]}
    rng = np.random.default_rng(0)
    host = jax.tree_util.tree_map(lambda s: rng.standard_normal(s.shape).astype(s.dtype), tree)
    mesh = Mesh(np.array(jax.devices()[:devices]), ("d",))
    state = jax.device_put(host, NamedSharding(mesh, PartitionSpec()))
    leaves = jax.tree_util.tree_leaves(state)
    directory = tempfile.mkdtemp(prefix="bsgap-ckpt-bench-")
    if mode == "bsgap":
        checkpointer = Checkpointer(directory, max_to_keep=2)
        save = lambda step: (checkpointer.save(step, state, {"step": step}),  # noqa: E731
                             checkpointer.wait())
    else:
        manager = ocp.CheckpointManager(os.path.join(directory, "checkpoints"),
                                        options=ocp.CheckpointManagerOptions(max_to_keep=2,
                                                                             create=True))
        save = lambda step: (manager.save(step, args=ocp.args.Composite(  # noqa: E731
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave({"step": step})),
            force=True), manager.wait_until_finished())
    seconds = []
    for step in range(1, saves + 1):
        start = time.perf_counter()
        save(step)
        seconds.append(time.perf_counter() - start)
    return {"mode": mode, "devices": devices, "leaves": len(leaves),
            "megabytes": sum(x.nbytes for x in leaves) / 2**20, "save_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", default="2,8")
    parser.add_argument("--saves", type=int, default=3)
    parser.add_argument("--out", default=None)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # mode,devices (child)
    args = parser.parse_args()
    if args.one:
        mode, devices = args.one.split(",")
        print(json.dumps(measure(mode, int(devices), args.saves)))
        return
    rows = []
    for devices in [int(d) for d in args.devices.split(",")]:
        for mode in ("orbax", "bsgap"):
            out = subprocess.run([sys.executable, __file__, f"--one={mode},{devices}",
                                  f"--saves={args.saves}"], capture_output=True, text=True,
                                 check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"{mode:5s} {devices} devices, {r['leaves']} leaves, {r['megabytes']:.0f} MiB: "
                  + ", ".join(f"{s:.2f}" for s in r["save_seconds"]) + " s per save", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
