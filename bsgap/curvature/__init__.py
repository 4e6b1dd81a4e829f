"""Curvature and gradient-noise library: pure functions of (loss_fn, params, batches).

`loss_fn(params, batch) -> scalar mean loss over the batch`; `batches` is a sequence of batches
(pytrees of arrays with a leading example axis); the measured function is the batch-size-weighted
average of loss_fn over all batches (the full-dataset loss when they cover the dataset).
Every result is a frozen dataclass with `to_json()` and a `bn_mode` field filled from the
`bn_mode=` keyword ('train', 'eval' or None) that the caller states.

Each batch is evaluated by a plain jit on one device and averaged on the host; sharding the batch
loop over a device mesh is not done yet.
"""
from bsgap.curvature.density import spectral_density
from bsgap.curvature.eigen import top_eigenvalues
from bsgap.curvature.hutchinson import hessian_trace
from bsgap.curvature.interpolation import interpolate, random_direction_profile
from bsgap.curvature.noise import gradient_noise
from bsgap.curvature.noise_scale import smith_le_noise_scale, two_batch_noise
from bsgap.curvature.results import (EpsSharpness, GradientNoise, HessianTrace, LineProfile,
                                     SamSharpness, SpectralDensity, TopEigenvalues,
                                     TwoBatchNoise)
from bsgap.curvature.sam import sam_sharpness
from bsgap.curvature.sharpness import eps_sharpness

__all__ = [
    "top_eigenvalues", "hessian_trace", "spectral_density", "eps_sharpness", "sam_sharpness",
    "gradient_noise", "two_batch_noise", "smith_le_noise_scale", "interpolate",
    "random_direction_profile",
    "TopEigenvalues", "HessianTrace", "SpectralDensity", "EpsSharpness", "SamSharpness",
    "GradientNoise", "TwoBatchNoise", "LineProfile",
]
