"""microbatch_size='auto' picks the largest microbatch that fits; the online noise scale equals the
two-batch estimators computed independently from per-microbatch gradients."""
import jax
import jax.flatten_util
import numpy as np
import pytest

from bsgap import logbook
from bsgap.layout import LayoutError
from bsgap.memory import compiled_bytes
from bsgap.trainer import Trainer
from helpers import drive_steps, mean_loss_grad, tiny_config


def _footprint(data_dir, tmp_path, micro):
    """(train step bytes, eval step bytes) per device of the digits MLP with this microbatch."""
    config = tiny_config(data_dir, normalization="ghost", ghost_batch_size=4, batch_size=64,
                         microbatch_size=micro, num_devices=1)
    # The 'auto' search compiles with lax.scan (bounded memory; bsgap/accumulation.py), so its
    # footprints are the scanned ones: an unrolled loop may keep microbatches live together.
    trainer = Trainer(config, str(tmp_path / f"m{micro}"), accumulation_loop="scan")
    trainer.compile()
    trainer.release()
    return trainer.step_bytes, compiled_bytes(trainer.eval_step)


def test_auto_microbatch_picks_largest_that_fits(data_dir, tmp_path):
    """The budget: max(train step, eval step) + 2 queued batches + the data kept on the device
    within 90% of the limit. The limit is put where 64 fits 100% of it but not 90%, so only the
    headroom makes it pick 32."""
    measured = {m: _footprint(data_dir, tmp_path, m) for m in (64, 32, 16)}
    sizes = {m: train for m, (train, _) in measured.items()}
    eval_bytes = measured[64][1]
    assert sizes[64] > sizes[32] > sizes[16] and {e for _, e in measured.values()} == {eval_bytes}
    queued = 2 * 64 * (8 * 8 * 4 + 4)     # two per-device batches: 8x8 float32 image, int32 label
    # The splits kept on the device (bsgap/device_resident.py): the eval split padded to 2 x 200
    # (image, label, mask) and the 1,437 training examples.
    resident = 400 * (8 * 8 * 4 + 4 + 4) + 1437 * (8 * 8 * 4 + 4)
    need = {m: max(sizes[m], eval_bytes) + queued + resident for m in sizes}
    limit = int((need[32] + need[64]) / 2 / 0.9)
    assert need[64] <= limit and need[64] > 0.9 * limit >= need[32]
    config = tiny_config(data_dir, normalization="ghost", ghost_batch_size=4, batch_size=64,
                         microbatch_size="auto", memory_limit_bytes=limit, num_devices=1,
                         num_steps=2)
    trainer = Trainer(config, str(tmp_path / "auto"))
    summary = trainer.run()
    lay = trainer.resolved.layout
    assert (lay.microbatch, lay.accumulation_steps, lay.batch_size) == (32, 2, 64)
    stored = logbook.read_json(str(tmp_path / "auto" / "config.json"))
    assert stored["resolved"]["layout"]["microbatch"] == 32 and summary["status"] == "complete"
    assert stored["memory"]["budget"] == {
        "limit_bytes": limit, "headroom_fraction": 0.1, "eval_step_bytes": eval_bytes,
        "queued_input_bytes": queued, "resident_bytes": resident,
        "usable_bytes": int(limit * 0.9)}
    # 64 is one microbatch, compiled without a loop there (with a one-step scan above).
    assert [m for m, _ in stored["memory"]["tried"]] == [64, 32]
    assert stored["memory"]["tried"][1][1] == sizes[32]

    config.microbatch_size = 64       # an explicit microbatch is held to the whole limit
    config.memory_limit_bytes = need[64] - 1
    with pytest.raises(LayoutError, match=r"microbatch 64 needs .*microbatch_size=auto"):
        Trainer(config, str(tmp_path / "explicit")).run()
    config.microbatch_size, config.memory_limit_bytes = "auto", None   # the CPU reports no limit
    with pytest.raises(LayoutError, match=r"set --config.memory_limit_bytes"):
        Trainer(config, str(tmp_path / "no-limit"))
    assert not (tmp_path / "no-limit").exists()


def test_online_noise_scale_ema_over_steps_matches_two_batch_estimator(data_dir, tmp_path):
    """Five steps, each recomputed independently: per-microbatch gradients in float64 at the
    step's parameters give the step's two-batch estimates x_i = (|G|^2_i, S_i); the logged values
    after step t must be the bias-corrected EMA  sum_i d^(t-i) (1-d) x_i / (1 - d^t)  and B_simple
    the ratio of the two EMAs (a swapped d / 1-d, a missing correction or no EMA all fail)."""
    decay = 0.7
    config = tiny_config(data_dir, batch_size=32, num_devices=2, microbatch_size=4, num_steps=5,
                         log_every_steps=1, noise_ema_decay=decay, weight_decay=0.0,
                         learning_rate=0.5, optimizer="sgd")
    trainer = Trainer(config, str(tmp_path))
    xs, logged = [], []
    for t, params, _, batch, metrics in drive_steps(trainer, 5):
        small = []
        for start in range(0, 32, 4):   # 2 devices x 4 microbatches of 4, in batch order
            g = mean_loss_grad(trainer.model, params, batch["image"][start:start + 4],
                               batch["label"][start:start + 4], 10)
            small.append(np.asarray(jax.flatten_util.ravel_pytree(g)[0], np.float64))
        big = np.mean(small, axis=0)
        small_sq, big_sq = np.mean([g @ g for g in small]), big @ big
        xs.append(((32 * big_sq - 4 * small_sq) / (32 - 4),
                   (small_sq - big_sq) / (1 / 4 - 1 / 32)))
        logged.append(metrics)
    xs = np.array(xs)
    assert np.ptp(xs[:, 1]) > 0.05 * np.abs(xs[:, 1]).max()   # the estimates do move
    for t in range(1, 6):
        w = np.array([decay ** (t - i) * (1 - decay) for i in range(1, t + 1)])
        g2, s = (w @ xs[:t]) / (1 - decay ** t)
        m = logged[t - 1]
        assert float(m["noise_grad_norm_sq"]) == pytest.approx(g2, rel=5e-4), t
        assert float(m["noise_trace_cov"]) == pytest.approx(s, rel=5e-4), t
        assert float(m["b_simple"]) == pytest.approx(s / g2, rel=1e-3), t
    # The same numbers reach metrics.jsonl when the trainer runs the steps itself.
    Trainer(config, str(tmp_path / "run")).run()
    records = logbook.read_jsonl(str(tmp_path / "run" / "metrics.jsonl"))
    np.testing.assert_allclose([r["b_simple"] for r in records],
                               [float(m["b_simple"]) for m in logged], rtol=1e-5)


def test_no_noise_scale_with_one_small_batch(data_dir, tmp_path):
    config = tiny_config(data_dir, num_devices=1, num_steps=5, log_every_steps=5)
    Trainer(config, str(tmp_path)).run()
    assert "b_simple" not in logbook.read_jsonl(str(tmp_path / "metrics.jsonl"))[0]
