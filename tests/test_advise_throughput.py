"""bsgap.advise.throughput on 2 batch sizes of the tiny MLP: the layout it compiled, the steps it
timed, and rates consistent with the wall time the measurement took."""
import time

import pytest

from bsgap.advise.throughput import INPUT_LIMITED_FRACTION, measure_throughput
from tests.helpers import tiny_config


@pytest.mark.parametrize("batch_size,accumulation", [(32, 2), (64, 4)])
def test_throughput_of_the_real_step(data_dir, batch_size, accumulation):
    config = tiny_config(data_dir, num_devices=1, microbatch_size=16)
    start = time.perf_counter()
    r = measure_throughput(config, batch_size, min_examples=600, min_steps=6, chunks=3)
    wall = time.perf_counter() - start
    # steps: at least min_examples / B, a multiple of the chunk count
    expected = max(6, 3, -(-600 // batch_size))
    expected -= expected % 3
    assert r["timed_steps"] == expected
    assert r["layout"]["batch_size"] == batch_size and r["layout"]["microbatch"] == 16
    assert r["accumulation_steps"] == accumulation == batch_size // 16
    assert r["step_bytes_per_device"] > 0
    # both ways timed the steps inside this call: each rate's examples took less than the wall
    timed_examples = r["timed_steps"] * batch_size
    for key in ("examples_per_second", "examples_per_second_step_alone"):
        assert r[key] >= r[key + "_median"] > 0
        assert timed_examples / r[key] < wall
    assert r["input_limited"] == (r["examples_per_second"]
                                  < INPUT_LIMITED_FRACTION * r["examples_per_second_step_alone"])


def test_throughput_feeds_the_step_what_the_trainer_feeds_it(data_dir):
    """digits32 sends uint8 images that the step normalizes (image_transfer) and keeps its train
    split on the device: the timed batches must be those the trainer's loop makes (a host-
    normalized float32 batch is refused by a step compiled for uint8)."""
    config = tiny_config(data_dir, dataset="digits32", eval_split="test", image_transfer="uint8",
                         num_devices=1, eval_batch_size=360)
    r = measure_throughput(config, 32, min_examples=96, min_steps=3, chunks=3)
    assert r["timed_steps"] == 3 and r["examples_per_second"] > 0
    assert r["examples_per_second_step_alone"] > 0
