"""The public facade: exported names, argument errors raised before any evaluation, bn_mode
recording and JSON-ready results."""
import json

import numpy as np
import pytest

import curvature_helpers as ch
from bsgap import curvature

PARAMS = {"theta": np.ones(3, np.float32)}
BATCHES = ch.dummy_batches()


def never_called(params, batch):
    raise AssertionError("loss_fn must not be evaluated when the arguments are invalid")


def test_exports_exactly_the_facade_and_result_classes():
    assert sorted(curvature.__all__) == sorted([
        "top_eigenvalues", "hessian_trace", "spectral_density", "eps_sharpness",
        "sam_sharpness", "gradient_noise", "two_batch_noise", "smith_le_noise_scale",
        "interpolate", "random_direction_profile", "TopEigenvalues", "HessianTrace",
        "SpectralDensity", "EpsSharpness", "SamSharpness", "GradientNoise", "TwoBatchNoise",
        "LineProfile"])
    for name in curvature.__all__:
        assert getattr(curvature, name) is not None


F = never_called
BAD_CALLS = {
    "method": (lambda: curvature.top_eigenvalues(F, PARAMS, BATCHES, method="lanzcos"),
               "lanzcos"),
    "k": (lambda: curvature.top_eigenvalues(F, PARAMS, BATCHES, k=0), "k=0"),
    "k_too_big": (lambda: curvature.top_eigenvalues(F, PARAMS, BATCHES, k=4), "k=4"),
    "tol": (lambda: curvature.top_eigenvalues(F, PARAMS, BATCHES, tol=0.0), "tol=0.0"),
    "empty": (lambda: curvature.top_eigenvalues(F, PARAMS, []), "empty"),
    "ragged": (lambda: curvature.top_eigenvalues(
        F, PARAMS, [{"x": np.zeros((3, 1)), "y": np.zeros(2)}]), "leading example dimension"),
    "trace_tol": (lambda: curvature.hessian_trace(F, PARAMS, BATCHES, tol=-1.0), "tol=-1.0"),
    "probes": (lambda: curvature.hessian_trace(F, PARAMS, BATCHES, max_probes=0),
               "max_probes=0"),
    "bn_mode": (lambda: curvature.hessian_trace(F, PARAMS, BATCHES, bn_mode="training"),
                "training"),
    "num_steps": (lambda: curvature.spectral_density(F, PARAMS, BATCHES, num_steps=0),
                  "num_steps=0"),
    "epsilon": (lambda: curvature.eps_sharpness(F, PARAMS, BATCHES, epsilon=-1e-3),
                "epsilon=-0.001"),
    "subspace": (lambda: curvature.eps_sharpness(F, PARAMS, BATCHES, subspace_dim=0),
                 "subspace_dim=0"),
    "subspace_too_big": (lambda: curvature.eps_sharpness(F, PARAMS, BATCHES, subspace_dim=100),
                         "subspace_dim=100"),
    "init": (lambda: curvature.eps_sharpness(F, PARAMS, BATCHES, init="ones"), "ones"),
    "rho": (lambda: curvature.sam_sharpness(F, PARAMS, BATCHES, rho=0.0), "rho=0.0"),
    "chunk": (lambda: curvature.gradient_noise(F, PARAMS, BATCHES, chunk_size=0),
              "chunk_size=0"),
    "one_example": (lambda: curvature.gradient_noise(F, PARAMS, [{"x": np.zeros((1, 2))}]),
                    ">= 2"),
    "alphas": (lambda: curvature.interpolate(F, PARAMS, PARAMS, BATCHES, alphas=[]), "alphas"),
    "shapes": (lambda: curvature.interpolate(F, PARAMS, {"theta": np.ones(4)}, BATCHES, [0.0]),
               "shapes"),
    "one_dim": (lambda: curvature.random_direction_profile(F, PARAMS, BATCHES, one_dim="drop"),
                "drop"),
    "two_batch": (lambda: curvature.two_batch_noise(1.0, 2.0, 64, 32), "b_small=64"),
    "smith_le": (lambda: curvature.smith_le_noise_scale(0.1, 100, 200), "batch_size=200"),
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_bad_arguments_raise_value_error_naming_the_value(name):
    call, fragment = BAD_CALLS[name]
    with pytest.raises(ValueError) as info:
        call()
    assert fragment in str(info.value)


def test_results_record_bn_mode_and_serialize_to_json():
    a = ch.symmetric_with_spectrum([1.0, 2.0, 3.0], seed=0)
    loss_fn = ch.quadratic_loss(a)
    params = {"theta": np.array([0.5, -0.5, 1.0], np.float32)}
    results = [
        curvature.top_eigenvalues(loss_fn, params, BATCHES, bn_mode="eval"),
        curvature.hessian_trace(loss_fn, params, BATCHES, max_probes=3, bn_mode="eval"),
        curvature.spectral_density(loss_fn, params, BATCHES, num_steps=3, bn_mode="eval"),
        curvature.eps_sharpness(loss_fn, params, BATCHES, bn_mode="eval"),
        curvature.sam_sharpness(loss_fn, params, BATCHES, bn_mode="eval"),
        curvature.interpolate(loss_fn, params, params, BATCHES, [0.0, 1.0], bn_mode="eval"),
        curvature.random_direction_profile(loss_fn, params, BATCHES, [0.0], bn_mode="eval"),
    ]
    for result in results:
        payload = result.to_json()
        assert payload["bn_mode"] == "eval" and payload["result"] == type(result).__name__
        assert json.loads(json.dumps(payload)) == payload
    assert curvature.top_eigenvalues(loss_fn, params, BATCHES).bn_mode is None
    np.testing.assert_allclose(results[0].to_json()["eigenvalues"], [3.0], rtol=1e-4)
    with pytest.raises(Exception):
        results[0].num_hvps = 0  # frozen
