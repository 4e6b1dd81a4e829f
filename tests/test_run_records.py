"""What a run writes, checked against the steps themselves: metrics.jsonl interval means, the
steady-state examples/s and train_seconds (evaluation and checkpoints excluded), TensorBoard
scalars, data_seed vs seed, and a bf16 training run (fp32 parameters, optimizer state and loss)."""
import glob
import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bsgap import logbook
from bsgap.checkpoint import Checkpointer
from bsgap.data.sources import TrainStream
from bsgap.host_state import HostState, flush_metrics, run_summary
from bsgap.step import init_key
from bsgap.trainer import Trainer, final_params
from helpers import tiny_config

MEANS = ("train_loss", "train_accuracy", "grad_norm")


def test_interval_records_are_means_of_the_steps(data_dir, tmp_path):
    """A run logged every 5 steps against the same run logged every step (same program, same
    batches): each record's loss/accuracy/grad norm is the mean of its 5 steps, the learning
    rate and noise estimates the values of its last step."""
    every = {}
    for log_every in (1, 5):
        config = tiny_config(data_dir, num_steps=20, log_every_steps=log_every, num_devices=2,
                             microbatch_size=8, eval_every_steps=20, checkpoint_every_steps=None)
        Trainer(config, str(tmp_path / str(log_every))).run()
        every[log_every] = logbook.read_jsonl(str(tmp_path / str(log_every) / "metrics.jsonl"))
    steps, grouped = every[1], every[5]
    assert [r["step"] for r in grouped] == [5, 10, 15, 20]
    for record in grouped:
        window = steps[record["step"] - 5:record["step"]]
        for key in MEANS:
            assert record[key] == pytest.approx(np.mean([r[key] for r in window]), rel=1e-6), key
        for key in ("learning_rate", "b_simple", "noise_trace_cov"):
            assert record[key] == pytest.approx(window[-1][key], rel=1e-6), key
        assert record["examples"] == record["step"] * 32
        assert record["epoch"] == pytest.approx(record["step"] * 32 / 1437)


def test_examples_per_second_and_train_seconds_bookkeeping():
    """flush_metrics / run_summary on made-up intervals: 4 log intervals of 5 steps at B=32, the
    first 10 s (it includes first-execution overhead), the others 1, 2 and 1 s."""
    host = HostState()
    fetched = [{"train_loss": 1.0 + i, "train_accuracy": 0.5, "grad_norm": 2.0,
                "learning_rate": 0.1 * (i + 1)} for i in range(5)]
    records = [flush_metrics(host, fetched, 5 * (k + 1), seconds, k == 0, batch_size=32,
                             log_every=5, total_steps=20, num_train_examples=1000)
               for k, seconds in enumerate((10.0, 1.0, 2.0, 1.0))]
    assert [r["examples_per_second"] for r in records] == [16.0, 160.0, 80.0, 160.0]
    assert all(r["train_loss"] == 3.0 and r["learning_rate"] == pytest.approx(0.5)
               for r in records)
    assert host.train_seconds == 14.0
    summary = run_summary(host, tiny_config(""), _Resolved(), 20, compile_seconds=3.0)
    assert summary["examples_per_second"] == 15 * 32 / 4.0   # the first interval left out
    assert summary["train_seconds"] == 14.0 and summary["compile_seconds"] == 3.0


class _Resolved:
    num_train_examples, total_steps, scaled_learning_rate = 1000, 20, 0.1


def test_train_seconds_exclude_evaluation_and_checkpoints(data_dir, tmp_path, monkeypatch):
    """Evaluation and checkpointing made 0.3 s slower each (4 + 4 of them: 2.4 s) do not reach
    train_seconds, seconds_to_target or the steady-state examples/s."""
    evaluate, save = Trainer.evaluate, Checkpointer.save
    monkeypatch.setattr(Trainer, "evaluate",
                        lambda self, state: (time.sleep(0.3), evaluate(self, state))[1])
    monkeypatch.setattr(Checkpointer, "save",
                        lambda self, *a, **k: (time.sleep(0.3), save(self, *a, **k))[1])
    config = tiny_config(data_dir, num_steps=40, eval_every_steps=10, checkpoint_every_steps=10,
                         log_every_steps=10, target_accuracy=0.3, num_devices=2)
    start = time.perf_counter()
    summary = Trainer(config, str(tmp_path)).run()
    wall = time.perf_counter() - start
    assert wall > summary["compile_seconds"] + 2.4
    assert summary["train_seconds"] < 1.5, summary   # 40 MLP steps, ~1 ms each
    assert summary["seconds_to_target"] <= summary["train_seconds"]
    assert summary["examples_per_second"] > 30 * 32 / 1.5   # 30 steady steps in < 1.5 s


def test_tensorboard_scalars_equal_the_jsonl_records(data_dir, tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    config = tiny_config(data_dir, num_steps=20, log_every_steps=5, eval_every_steps=10,
                         tensorboard=True)
    Trainer(config, str(tmp_path)).run()
    files = glob.glob(str(tmp_path / "tensorboard" / "events.out.tfevents.*"))
    assert len(files) == 1
    events = event_accumulator.EventAccumulator(files[0], size_guidance={"scalars": 0})
    events.Reload()

    def scalars(tag):
        return {e.step: e.value for e in events.Scalars(tag)}

    metrics = logbook.read_jsonl(str(tmp_path / "metrics.jsonl"))
    evals = logbook.read_jsonl(str(tmp_path / "eval.jsonl"))
    for key, tag in (("train_loss", "loss"), ("train_accuracy", "accuracy"),
                     ("learning_rate", "learning_rate")):
        assert scalars(f"train/{tag}") == pytest.approx({r["step"]: r[key] for r in metrics})
    for key in ("accuracy", "loss"):
        assert scalars(f"test/{key}") == pytest.approx({r["step"]: r[key] for r in evals})
    # Tidy tags: no repeated prefix, no counters.
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/grad_norm", "train/examples_per_second"} <= tags
    assert not tags & {"train/train_loss", "train/epoch", "train/examples", "test/num_examples",
                       "test/examples"}, tags


def _raw_scalar_steps(logdir):
    """(tag, step) of every scalar in every event file, in file order: what a reader without
    TensorBoard's restart purge (tensorboard --inspect, pandas exports) sees."""
    from tensorboard.compat.proto import event_pb2

    from bsgap.tb_events import read_records

    seen = []
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        for record in read_records(path):
            event = event_pb2.Event.FromString(record)
            seen += [(v.tag, event.step) for v in event.summary.value]
    return seen


def test_tensorboard_after_a_resume_holds_each_step_once(data_dir, tmp_path):
    """An attempt that logged to step 20 and lost its step-20 checkpoint resumes at 10 and redoes
    11-20: the event files then hold each (tag, step) once, in order, with the resumed values,
    read by TensorBoard's EventMultiplexer and by a plain record reader."""
    from tensorboard.backend.event_processing import event_multiplexer

    config = tiny_config(data_dir, num_steps=20, log_every_steps=5, eval_every_steps=10,
                         checkpoint_every_steps=10, tensorboard=True)
    Trainer(config, str(tmp_path)).run()
    shutil.rmtree(tmp_path / "checkpoints" / "20")
    (tmp_path / "summary.json").unlink()
    first_attempt = {r["step"]: r["train_loss"]
                     for r in logbook.read_jsonl(str(tmp_path / "metrics.jsonl"))}
    Trainer(config, str(tmp_path)).run()
    metrics = logbook.read_jsonl(str(tmp_path / "metrics.jsonl"))
    assert [r["step"] for r in metrics] == [5, 10, 15, 20]
    assert {r["step"]: r["train_loss"] for r in metrics} == pytest.approx(first_attempt)

    logdir = str(tmp_path / "tensorboard")
    assert len(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))) == 2
    raw = _raw_scalar_steps(logdir)
    assert len(raw) == len(set(raw)), raw
    by_tag = {}
    for tag, step in raw:
        by_tag.setdefault(tag, []).append(step)
    assert by_tag["train/loss"] == [5, 10, 15, 20] and by_tag["test/accuracy"] == [10, 20]
    multiplexer = event_multiplexer.EventMultiplexer(size_guidance={"scalars": 0})
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    (run,) = multiplexer.Runs()
    loss = {e.step: e.value for e in multiplexer.Scalars(run, "train/loss")}
    assert loss == pytest.approx({r["step"]: r["train_loss"] for r in metrics})


def _first_step_loss(workdir):
    rows = logbook.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    assert rows[0]["step"] == 1
    return rows[0]["train_loss"]


def test_seed_sets_the_initialization_and_data_seed_the_batches(data_dir, tmp_path):
    """The first step's loss is the loss of the parameters drawn from ``seed`` on the batch drawn
    from ``data_seed``, recomputed here; swapping either seed changes it accordingly."""
    runs = {(0, 7): None, (0, 8): None, (1, 7): None, (3, None): None}
    for seed, data in runs:
        config = tiny_config(data_dir, num_steps=1, log_every_steps=1, seed=seed, data_seed=data,
                             eval_every_steps=1)
        trainer = Trainer(config, str(tmp_path / f"{seed}-{data}"))
        trainer.run()
        runs[seed, data] = _first_step_loss(str(tmp_path / f"{seed}-{data}"))
    model, split = trainer.model, trainer.data.train
    for (seed, data), logged in runs.items():
        params = model.init(init_key(seed), jnp.zeros((1, 8, 8, 1)), train=False)
        batch = TrainStream(split, 32, seed if data is None else data).batch(0)
        logits = model.apply(params, jnp.asarray(batch["image"]), train=False)
        log_p = jax.nn.log_softmax(logits)
        expected = -float(jnp.mean(log_p[jnp.arange(32), batch["label"]]))
        assert logged == pytest.approx(expected, rel=1e-5), (seed, data)
    assert len({round(v, 6) for v in runs.values()}) == 4


def test_bfloat16_training_run(data_dir, tmp_path):
    """bf16 compute trains like fp32 and keeps fp32 parameters, optimizer state and loss."""
    summaries, losses = {}, {}
    for dtype in ("float32", "bfloat16"):
        config = tiny_config(data_dir, dtype=dtype, num_steps=60, log_every_steps=10,
                             eval_every_steps=60, num_devices=2)
        trainer = Trainer(config, str(tmp_path / dtype))
        summaries[dtype] = trainer.run()
        state = jax.device_get(trainer.trial_state(0))
        for leaf in jax.tree_util.tree_leaves((state.params, state.opt_state)):
            if jnp.issubdtype(leaf.dtype, jnp.floating):
                assert leaf.dtype == jnp.float32
        assert all(x.dtype == np.float32
                   for x in jax.tree_util.tree_leaves(final_params(str(tmp_path / dtype))))
        losses[dtype] = [r["train_loss"] for r in
                         logbook.read_jsonl(str(tmp_path / dtype / "metrics.jsonl"))]
    assert losses["bfloat16"][-1] < 0.5 * losses["bfloat16"][0]
    np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=0.1)
    assert abs(summaries["bfloat16"]["final_eval_accuracy"]
               - summaries["float32"]["final_eval_accuracy"]) <= 0.03
    # Different programs: the bf16 run is not the fp32 run under another name.
    assert losses["bfloat16"] != losses["float32"]
