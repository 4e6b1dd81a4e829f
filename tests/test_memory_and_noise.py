"""microbatch_size='auto' picks the largest microbatch that fits; the online noise scale equals the
two-batch estimators computed independently from per-microbatch gradients."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bsgap import logbook
from bsgap.data import TrainStream
from bsgap.layout import LayoutError
from bsgap.step import cross_entropy, init_key
from bsgap.trainer import Trainer
from helpers import tiny_config


def _footprint(data_dir, tmp_path, micro):
    config = tiny_config(data_dir, normalization="ghost", ghost_batch_size=4, batch_size=64,
                         microbatch_size=micro, num_devices=1)
    # The 'auto' search compiles with lax.scan (bounded memory; bsgap/accumulation.py), so its
    # footprints are the scanned ones: an unrolled loop may keep microbatches live together.
    trainer = Trainer(config, str(tmp_path / f"m{micro}"), accumulation_loop="scan")
    trainer.compile()
    return trainer.step_bytes


def test_auto_microbatch_picks_largest_that_fits(data_dir, tmp_path):
    sizes = {m: _footprint(data_dir, tmp_path, m) for m in (64, 32, 16)}
    assert sizes[64] > sizes[32] > sizes[16]
    limit = (sizes[32] + sizes[64]) // 2
    config = tiny_config(data_dir, normalization="ghost", ghost_batch_size=4, batch_size=64,
                         microbatch_size="auto", memory_limit_bytes=limit, num_devices=1,
                         num_steps=2)
    trainer = Trainer(config, str(tmp_path / "auto"))
    summary = trainer.run()
    lay = trainer.resolved.layout
    assert (lay.microbatch, lay.accumulation_steps, lay.batch_size) == (32, 2, 64)
    stored = logbook.read_json(str(tmp_path / "auto" / "config.json"))
    assert stored["resolved"]["layout"]["microbatch"] == 32 and summary["status"] == "complete"

    config.microbatch_size = 64
    with pytest.raises(LayoutError, match=r"microbatch 64 needs .*microbatch_size=auto"):
        Trainer(config, str(tmp_path / "explicit")).run()


def test_online_noise_scale_matches_two_batch_estimator(data_dir, tmp_path):
    decay = 0.9
    config = tiny_config(data_dir, batch_size=32, num_devices=2, microbatch_size=4, num_steps=1,
                         log_every_steps=1, noise_ema_decay=decay, weight_decay=0.0)
    trainer = Trainer(config, str(tmp_path))
    trainer.run()
    record = logbook.read_jsonl(str(tmp_path / "metrics.jsonl"))[0]

    model, data = trainer.model, trainer.data
    params = model.init(init_key(0), jnp.asarray(data.train.arrays["image"][:1]),
                        train=False)["params"]
    batch = TrainStream(data.train, 32, 0).batch(0)

    def grad_of(rows):
        def loss(p):
            logits = model.apply({"params": p}, batch["image"][rows], train=True)
            return cross_entropy(logits, batch["label"][rows], 10).mean()
        flat, _ = jax.flatten_util.ravel_pytree(jax.grad(loss)(params))
        return np.asarray(flat, np.float64)

    small = [grad_of(slice(s, s + 4)) for s in range(0, 32, 4)]  # 2 devices x 4 microbatches
    big = np.mean(small, axis=0)
    small_sq, big_sq = np.mean([g @ g for g in small]), big @ big
    g2 = (32 * big_sq - 4 * small_sq) / (32 - 4)
    s = (small_sq - big_sq) / (1 / 4 - 1 / 32)
    assert record["noise_grad_norm_sq"] == pytest.approx(g2, rel=2e-4)
    assert record["noise_trace_cov"] == pytest.approx(s, rel=2e-4)
    assert record["b_simple"] == pytest.approx(s / g2, rel=5e-4)


def test_no_noise_scale_with_one_small_batch(data_dir, tmp_path):
    config = tiny_config(data_dir, num_devices=1, num_steps=5, log_every_steps=5)
    Trainer(config, str(tmp_path)).run()
    assert "b_simple" not in logbook.read_jsonl(str(tmp_path / "metrics.jsonl"))[0]
