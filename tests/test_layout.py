"""Layout validation: every error names the numbers and a valid alternative, before compiling."""
import pytest

from bsgap.layout import LayoutError, microbatch_candidates, resolve_layout


def test_valid_layout_derivation():
    lay = resolve_layout(batch_size=512, num_devices=8, microbatch_size=16, ghost_batch_size=8,
                         normalization="ghost")
    assert (lay.per_device_batch, lay.microbatch, lay.accumulation_steps, lay.bn_group) == \
        (64, 16, 4, 8)
    assert microbatch_candidates(lay) == [64, 32, 16, 8]


@pytest.mark.parametrize("kwargs,message", [
    (dict(batch_size=100, num_devices=8, microbatch_size=None, ghost_batch_size=None,
          normalization="none"), r"batch_size=100 is not divisible by the 8 devices.*96 or 104"),
    (dict(batch_size=64, num_devices=8, microbatch_size=3, ghost_batch_size=None,
          normalization="none"), r"per-device batch 8 .* microbatch_size=3; valid microbatch "
                                 r"sizes: \[1, 2, 4, 8\]"),
    (dict(batch_size=64, num_devices=2, microbatch_size=8, ghost_batch_size=3,
          normalization="ghost"), r"microbatch 8 is not divisible by ghost_batch_size=3; valid "
                                  r"ghost batch sizes: \[1, 2, 4, 8\]"),
    (dict(batch_size=64, num_devices=1, microbatch_size="auto", ghost_batch_size=None,
          normalization="batch"), r"'auto' with normalization='batch'"),
    (dict(batch_size=64, num_devices=1, microbatch_size=None, ghost_batch_size=8,
          normalization="none"), r"ghost_batch_size=8 needs normalization='ghost'"),
    (dict(batch_size=0, num_devices=1, microbatch_size=None, ghost_batch_size=None,
          normalization="none"), r"batch_size=0 must be a positive integer"),
])
def test_layout_errors(kwargs, message):
    with pytest.raises(LayoutError, match=message):
        resolve_layout(**kwargs)
