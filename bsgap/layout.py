"""The explicit layout of a global batch over devices, accumulation steps and BN groups.

    batch_size (B)   = num_devices x per_device_batch
    per_device_batch = accumulation_steps x microbatch
    microbatch       = k x bn_group        (bn_group: ghost_batch_size, or the microbatch for 'batch')

The gradient is the mean over all B examples for every layout; only the BN group (ghost batch)
changes the experiment, so it is its own setting. Every mismatch is reported before anything is
compiled, with the numbers and a valid alternative.
"""
from __future__ import annotations

import dataclasses


class LayoutError(ValueError):
    """A batch layout that cannot be realized; the message names the numbers and a fix."""


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _nearest_multiples(value: int, unit: int) -> str:
    low = (value // unit) * unit
    options = [m for m in (low, low + unit) if m > 0]
    return " or ".join(str(m) for m in options)


@dataclasses.dataclass(frozen=True)
class BatchLayout:
    batch_size: int
    num_devices: int
    per_device_batch: int
    microbatch: int
    accumulation_steps: int
    bn_group: int | None       # examples per BN statistics group; None without normalization

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def resolve_layout(*, batch_size: int, num_devices: int, microbatch_size, ghost_batch_size,
                   normalization: str, num_processes: int = 1) -> BatchLayout:
    """Validate and derive the layout. ``microbatch_size`` None means the whole per-device batch;
    'auto' is resolved later by the memory search (the full per-device batch is returned here and
    the BN group must then be fixed by ``ghost_batch_size``)."""
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise LayoutError(f"batch_size={batch_size!r} must be a positive integer")
    if num_devices % num_processes:
        raise LayoutError(f"{num_devices} devices cannot be split evenly over {num_processes} "
                          "processes")
    if batch_size % num_devices:
        raise LayoutError(
            f"batch_size={batch_size} is not divisible by the {num_devices} devices in use; use "
            f"batch_size={_nearest_multiples(batch_size, num_devices)}, or set "
            f"--config.num_devices to a divisor of {batch_size} (e.g. "
            f"{max(d for d in _divisors(batch_size) if d <= num_devices)})")
    per_device = batch_size // num_devices
    if microbatch_size in (None, "auto"):
        micro = per_device
    elif isinstance(microbatch_size, int) and microbatch_size > 0:
        micro = microbatch_size
        if per_device % micro:
            raise LayoutError(
                f"per-device batch {per_device} (batch_size={batch_size} over {num_devices} "
                f"devices) is not divisible by microbatch_size={micro}; valid microbatch sizes: "
                f"{_divisors(per_device)}, or 'auto'")
    else:
        raise LayoutError(f"microbatch_size={microbatch_size!r} must be a positive integer, "
                          "None (the whole per-device batch) or 'auto'")
    if normalization == "none":
        group = None
        if ghost_batch_size is not None:
            raise LayoutError(f"ghost_batch_size={ghost_batch_size} needs "
                              "normalization='ghost' (the model has normalization='none')")
    elif normalization == "batch":
        if ghost_batch_size is not None:
            raise LayoutError(f"ghost_batch_size={ghost_batch_size} needs normalization='ghost'; "
                              "'batch' normalizes over each microbatch")
        if microbatch_size == "auto":
            raise LayoutError("microbatch_size='auto' with normalization='batch' would let memory "
                              "change the BN batch; use normalization='ghost' with a "
                              "ghost_batch_size")
        group = micro
    elif normalization == "ghost":
        group = micro if ghost_batch_size is None else ghost_batch_size
        if microbatch_size == "auto" and ghost_batch_size is None:
            raise LayoutError("microbatch_size='auto' needs an explicit ghost_batch_size so that "
                              "memory cannot change the BN batch")
        if not isinstance(group, int) or group <= 0:
            raise LayoutError(f"ghost_batch_size={group!r} must be a positive integer")
        if micro % group:
            raise LayoutError(
                f"microbatch {micro} is not divisible by ghost_batch_size={group}; valid ghost "
                f"batch sizes: {_divisors(micro)} (or change batch_size/microbatch_size)")
    else:
        raise LayoutError(f"normalization={normalization!r} is not one of ('none', 'batch', "
                          "'ghost')")
    return BatchLayout(batch_size, num_devices, per_device, micro, per_device // micro, group)


def with_microbatch(layout: BatchLayout, microbatch: int) -> BatchLayout:
    """The same layout with another microbatch (the memory search's candidates)."""
    return dataclasses.replace(layout, microbatch=microbatch,
                               accumulation_steps=layout.per_device_batch // microbatch)


def microbatch_candidates(layout: BatchLayout) -> list[int]:
    """Microbatches that keep the BN group: divisors of the per-device batch that are multiples
    of the group, largest first."""
    unit = layout.bn_group or 1
    return [d for d in reversed(_divisors(layout.per_device_batch)) if d % unit == 0]


def bn_group_follows_layout(normalization: str, ghost_batch_size) -> bool:
    """Whether the BN group is the microbatch (so devices and microbatch_size set it): 'batch',
    or 'ghost' without a ghost_batch_size. Otherwise it is ghost_batch_size, whatever the layout."""
    return normalization == "batch" or (normalization == "ghost" and ghost_batch_size is None)


def describe_bn_group(layout: BatchLayout, normalization: str, ghost_batch_size) -> str:
    """The launch line's words for the BN group."""
    if layout.bn_group is None:
        return "no BN"
    if bn_group_follows_layout(normalization, ghost_batch_size):
        return f"BN group {layout.bn_group} = the microbatch, set by the layout"
    return f"BN group {layout.bn_group}, fixed by ghost_batch_size"


def bn_group_warning(layout: BatchLayout, normalization: str, ghost_batch_size) -> str | None:
    """A warning when the layout made the BN group smaller than the batch: the same config on
    another device count or microbatch_size would normalize over other groups (another
    experiment). None when the group is fixed by ghost_batch_size or is the whole batch."""
    if layout.bn_group is None or not bn_group_follows_layout(normalization, ghost_batch_size):
        return None
    if layout.bn_group == layout.batch_size:
        return None
    causes = []
    if layout.num_devices > 1:
        causes.append(f"{layout.num_devices} devices")
    if layout.accumulation_steps > 1:
        causes.append(f"{layout.accumulation_steps} accumulation microbatches")
    how = ("normalization='batch' normalizes over each microbatch" if normalization == "batch"
           else "ghost_batch_size=None means the microbatch")
    return (f"the BN group is {layout.bn_group} examples, not the batch of {layout.batch_size}, "
            f"because of {' and '.join(causes)} ({how}); another device count or microbatch_size "
            f"would change it, and so the experiment. Fix it with --config.normalization=ghost "
            f"--config.ghost_batch_size={layout.bn_group}")
