"""Convolutions whose gradient convolutions XLA:CPU runs with its fast (Eigen) kernel, in loops too.

Why: XLA:CPU runs a convolution with Eigen's multi-threaded kernel only when its dimension numbers are
canonical (input batch-spatial-feature, kernel spatial-in-out, output batch-spatial-feature). Its
``ConvCanonicalization`` pass rewrites other convolutions into that form with transposes, but only in
the *entry* computation (``xla/service/cpu/conv_canonicalization.cc`` iterates
``module->entry_computation()``). The gradient of a convolution w.r.t. its kernel and input are
convolutions with permuted dimension numbers (``f0b_i0o->0bf``, ``b0f_0oi->b0f``), so inside any
while loop -- ``lax.scan`` over accumulation microbatches, ``lax.map`` over trials -- they fall back
to XLA's generic loop emitter. Measured on 2 CPU cores (jax 0.10.2, cnn1d, B=128): a train step whose
gradient sits in a one-iteration ``lax.scan`` ran at ~9.5k examples/s against ~85k for the same step
without the loop (BENCHMARKS.md, "Why the loop was slow").

What: ``conv_general_dilated`` has the signature of ``lax.conv_general_dilated``. Outside
``canonical_conv_gradients()`` it *is* ``lax.conv_general_dilated``. Inside it (entered by the train
step while it traces the gradient) it is the same convolution with a ``custom_vjp`` whose backward
pass is JAX's own VJP of that convolution with every convolution in it rewritten exactly as XLA's
pass would rewrite it: transpose the operands to canonical order, convolve with the same window,
padding, dilations and group counts, transpose the result back. The arithmetic is that of the entry
computation's canonicalized convolutions, so values agree with plain ``jax.grad`` to float32
rounding. ``custom_vjp`` has no forward-mode rule, so curvature code (Hessian-vector products by
forward-over-reverse) never enters the context and sees plain convolutions. The choice is made at
trace time and ``jax.jit`` caches traces by function, not by this context: enter it inside the
function being traced (as the train step does), never around a call of an already-traced one.
"""
from __future__ import annotations

import contextlib
import contextvars

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jax_core

from bsgap.choices import CONV_GRADIENTS

_CANONICAL = contextvars.ContextVar("bsgap_canonical_conv_gradients", default=False)


def resolve_conv_gradients(mode: str, platform: str) -> str:
    """'canonical' or 'xla'. ``auto``: canonical on the CPU (the loop penalty above); 'xla' elsewhere,
    where XLA:GPU/TPU assign convolution layouts in every computation and no penalty was measured."""
    if mode not in CONV_GRADIENTS:
        raise ValueError(f"conv_gradients={mode!r} is not one of {CONV_GRADIENTS}")
    if mode == "auto":
        return "canonical" if platform == "cpu" else "xla"
    return mode


@contextlib.contextmanager
def canonical_conv_gradients(enabled: bool = True):
    """While tracing inside this context, ``conv_general_dilated`` differentiates canonically."""
    token = _CANONICAL.set(enabled)
    try:
        yield
    finally:
        _CANONICAL.reset(token)


def canonical_convolution(lhs, rhs, **params):
    """``conv_general_dilated_p`` with ``params`` (any dimension numbers) computed as a canonical
    convolution between transposes: NWC/NHWC/NDHWC input, spatial-in-out kernel, same output order."""
    dn = params["dimension_numbers"]
    lhs_spec, rhs_spec, out_spec = dn.lhs_spec, dn.rhs_spec, dn.out_spec
    rank = len(lhs_spec)
    spatial = tuple(range(1, rank - 1))
    lhs_perm = (lhs_spec[0],) + tuple(lhs_spec[2:]) + (lhs_spec[1],)
    rhs_perm = tuple(rhs_spec[2:]) + (rhs_spec[1], rhs_spec[0])
    out_perm = (out_spec[0],) + tuple(out_spec[2:]) + (out_spec[1],)
    canonical = lax.ConvDimensionNumbers(lhs_spec=(0, rank - 1) + spatial,
                                         rhs_spec=(rank - 1, rank - 2) + tuple(range(rank - 2)),
                                         out_spec=(0, rank - 1) + spatial)
    out = lax.conv_general_dilated_p.bind(jnp.transpose(lhs, lhs_perm), jnp.transpose(rhs, rhs_perm),
                                          **dict(params, dimension_numbers=canonical))
    return jnp.transpose(out, tuple(np.argsort(out_perm)))


def _evaluate_canonically(jaxpr, consts, *args):
    """Evaluate a flat jaxpr, every ``conv_general_dilated`` replaced by ``canonical_convolution``."""
    env = {}

    def read(var):
        return var.val if isinstance(var, jax_core.Literal) else env[var]

    env.update(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    for eqn in jaxpr.eqns:
        inputs = [read(v) for v in eqn.invars]
        if eqn.primitive is lax.conv_general_dilated_p:
            outputs = [canonical_convolution(*inputs, **eqn.params)]
        else:
            outputs = eqn.primitive.bind(*inputs, **eqn.params)
            if not eqn.primitive.multiple_results:
                outputs = [outputs]
        env.update(zip(eqn.outvars, outputs))
    return [read(v) for v in jaxpr.outvars]


def _with_canonical_vjp(params: dict):
    def plain(lhs, rhs):
        return lax.conv_general_dilated(lhs, rhs, **params)

    @jax.custom_vjp
    def conv(lhs, rhs):
        return plain(lhs, rhs)

    def forward(lhs, rhs):
        return plain(lhs, rhs), (lhs, rhs)

    def backward(residuals, cotangent):
        lhs, rhs = residuals
        closed = jax.make_jaxpr(lambda a, b, g: jax.vjp(plain, a, b)[1](g))(lhs, rhs, cotangent)
        return tuple(_evaluate_canonically(closed.jaxpr, closed.consts, lhs, rhs, cotangent))

    conv.defvjp(forward, backward)
    return conv


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None):
    """``lax.conv_general_dilated``; with canonical gradients inside ``canonical_conv_gradients()``."""
    params = dict(window_strides=window_strides, padding=padding, lhs_dilation=lhs_dilation,
                  rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                  feature_group_count=feature_group_count, batch_group_count=batch_group_count,
                  precision=precision, preferred_element_type=preferred_element_type)
    if not _CANONICAL.get():
        return lax.conv_general_dilated(lhs, rhs, **params)
    return _with_canonical_vjp(params)(lhs, rhs)
