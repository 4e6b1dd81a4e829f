"""How the step computes changes its speed, never its numbers (issue 11).

* Every accumulation strategy (none / unroll / scan) and both convolution-gradient forms (canonical /
  xla) give the parameters of an independent single-device reference (plain ``jax.grad`` of the mean
  loss over the whole batch) after 3 steps.
* The canonical convolution gradient equals ``jax.grad`` of ``lax.conv_general_dilated`` for strided,
  dilated, padded, grouped, 1-D and 2-D convolutions, vmapped and inside ``lax.scan``; and inside a loop
  every convolution XLA:CPU compiles has the canonical (Eigen) form, which it does not without it.
"""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from bsgap import logbook
from bsgap.accumulation import resolve_accumulation_loop
from bsgap.data import load_dataset
from bsgap.models.conv_grad import canonical_conv_gradients, conv_general_dilated
from bsgap.models.conv_grad import resolve_conv_gradients
from test_invariance import STEPS, _assert_trees_close, _config, _reference, _run

TOL = dict(rtol=2e-5, atol=2e-6)


@pytest.fixture(scope="module")
def reference(data_dir):
    return _reference(_config(data_dir), load_dataset("sklearn_digits", data_dir=data_dir))


@pytest.mark.parametrize("micro,loop,conv", [
    (None, "auto", "auto"),        # none + canonical: what a plain CPU run does
    (None, "scan", "xla"),         # the old step: a one-iteration scan, XLA's gradients
    (8, "auto", "auto"),           # unroll + canonical
    (8, "scan", "canonical"),
    (8, "unroll", "xla"),
])
def test_strategies_give_the_reference_parameters(data_dir, tmp_path, reference, micro, loop, conv):
    from bsgap.trainer import Trainer

    config = _config(data_dir, num_devices=1, microbatch_size=micro)
    trainer = Trainer(config, str(tmp_path), accumulation_loop=loop, conv_gradients=conv)
    trainer.run()
    expected_loop = {"auto": "none" if micro is None else "unroll"}.get(loop, loop)
    assert trainer.accumulation_loop == expected_loop
    assert trainer.conv_gradients == ("canonical" if conv == "auto" else conv)
    environment = logbook.read_json(str(tmp_path / logbook.CONFIG_FILE))["environment"]
    assert environment["accumulation_loop"] == expected_loop
    assert environment["conv_gradients"] == trainer.conv_gradients
    state = jax.device_get(trainer.trial_state(0))
    assert int(state.step) == STEPS
    ref_params, ref_stats = reference
    _assert_trees_close(state.params, ref_params, **TOL)
    _assert_trees_close(state.batch_stats, ref_stats, **TOL)


def test_eight_devices_with_canonical_gradients_match_the_reference(data_dir, tmp_path, reference):
    _, state, _ = _run(_config(data_dir, num_devices=8), tmp_path)
    _assert_trees_close(state.params, reference[0], **TOL)


CONVS = [  # (lhs shape, rhs shape, keyword arguments of lax.conv_general_dilated)
    ((4, 19, 3), (5, 3, 6), dict(window_strides=(2,), padding="SAME",
                                 dimension_numbers=("NWC", "WIO", "NWC"))),
    ((2, 9, 11, 4), (3, 3, 4, 5), dict(window_strides=(1, 2), padding=((2, 1), (0, 1)),
                                       rhs_dilation=(2, 1), dimension_numbers=("NHWC", "HWIO",
                                                                               "NHWC"))),
    ((2, 8, 8, 6), (3, 3, 3, 4), dict(window_strides=(1, 1), padding="VALID",
                                      feature_group_count=2,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))),
    ((3, 4, 7, 7), (6, 4, 3, 3), dict(window_strides=(2, 2), padding="SAME",
                                      dimension_numbers=("NCHW", "OIHW", "NCHW"))),
]


def _loss(conv, kwargs):
    return lambda x, w: jnp.sum(jnp.sin(conv(x, w, **kwargs)))


@pytest.mark.parametrize("lhs_shape,rhs_shape,kwargs", CONVS)
def test_canonical_conv_gradient_equals_jax_grad(lhs_shape, rhs_shape, kwargs):
    kx, kw = jax.random.split(jax.random.PRNGKey(0))
    x, w = jax.random.normal(kx, lhs_shape), jax.random.normal(kw, rhs_shape)
    # References jitted too: op-by-op dispatch compiles every primitive on its own (slower).
    expected = jax.jit(jax.grad(_loss(lax.conv_general_dilated, kwargs), argnums=(0, 1)))(x, w)
    with canonical_conv_gradients():
        got = jax.jit(jax.grad(_loss(conv_general_dilated, kwargs), argnums=(0, 1)))(x, w)
        # vmapped over a batch of kernels (trials), and inside a scan (accumulation)
        ws = jnp.stack([w, 2 * w])
        got_vmap = jax.jit(jax.vmap(jax.grad(_loss(conv_general_dilated, kwargs), argnums=(0, 1)),
                                    in_axes=(None, 0)))(x, ws)

        def body(carry, xi):
            g = jax.grad(_loss(conv_general_dilated, kwargs), argnums=1)(xi, w)
            return carry + g, None

        got_scan, _ = jax.jit(lambda xs: lax.scan(body, jnp.zeros_like(w), xs))(jnp.stack([x, -x]))
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    vmap_expected = jax.jit(jax.vmap(jax.grad(_loss(lax.conv_general_dilated, kwargs),
                                              argnums=(0, 1)), in_axes=(None, 0)))(x, ws)
    for a, b in zip(got_vmap, vmap_expected):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    plain_w = jax.jit(jax.grad(_loss(lax.conv_general_dilated, kwargs), argnums=1))
    scan_expected = plain_w(x, w) + plain_w(-x, w)
    np.testing.assert_allclose(got_scan, scan_expected, rtol=1e-4, atol=1e-4)
    # Outside the context the function is lax.conv_general_dilated itself (curvature's HVPs use it).
    grad_w = jax.grad(_loss(conv_general_dilated, kwargs), argnums=1)
    hvp = jax.jit(lambda: jax.jvp(lambda v: grad_w(x, v), (w,), (w,))[1])()
    plain = jax.grad(_loss(lax.conv_general_dilated, kwargs), argnums=1)
    np.testing.assert_allclose(hvp, jax.jit(lambda: jax.jvp(lambda v: plain(x, v), (w,), (w,))[1])(),
                               rtol=1e-5)


def _conv_dim_labels(step, *args):
    text = jax.jit(step).lower(*args).compile().as_text()
    return re.findall(r"convolution\(.*?dim_labels=([^,\s]+)", text)


def test_gradient_convolutions_in_a_loop_are_canonical_only_with_the_context():
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 16, 40, 4))
    w = jax.random.normal(jax.random.PRNGKey(1), (5, 4, 8))
    kwargs = dict(window_strides=(2,), padding="SAME", dimension_numbers=("NWC", "WIO", "NWC"))

    def make_step():  # a new function each time: jit caches traces by function, not by context
        def step(xs, w):
            def body(carry, xi):
                return carry + jax.grad(_loss(conv_general_dilated, kwargs), argnums=1)(xi, w), None
            return lax.scan(body, jnp.zeros_like(w), xs)[0]
        return step

    plain = _conv_dim_labels(make_step(), x, w)
    with canonical_conv_gradients():
        canonical = _conv_dim_labels(make_step(), x, w)
    assert canonical and all(label == "b0f_0io->b0f" for label in canonical), canonical
    # XLA:CPU canonicalizes only the entry computation: in the loop, the kernel gradient is not.
    assert any(label != "b0f_0io->b0f" for label in plain), plain


def test_choices_and_their_errors():
    assert resolve_accumulation_loop("auto", "cpu", 1) == "none"
    assert resolve_accumulation_loop("auto", "cpu", 8) == "unroll"
    assert resolve_accumulation_loop("auto", "cpu", 8, memory_bound=True) == "scan"
    assert resolve_accumulation_loop("auto", "cpu", 64) == "scan"
    assert resolve_accumulation_loop("auto", "gpu", 8) == "scan"
    assert resolve_accumulation_loop("unroll", "gpu", 8) == "unroll"
    with pytest.raises(ValueError, match=r"accumulation_loop='fori' is not one of"):
        resolve_accumulation_loop("fori", "cpu", 1)
    with pytest.raises(ValueError, match=r"'none' needs one microbatch .* has 4 accumulation"):
        resolve_accumulation_loop("none", "cpu", 4)
    assert resolve_conv_gradients("auto", "cpu") == "canonical"
    assert resolve_conv_gradients("auto", "tpu") == "xla"
    with pytest.raises(ValueError, match=r"conv_gradients='fast' is not one of"):
        resolve_conv_gradients("fast", "cpu")
