"""Optimizers against hand-computed updates; model registry shapes and parameter counts."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bsgap.models import MODELS, create_model
from bsgap.optim import make_optimizer
from bsgap.step import cross_entropy

PARAMS = {"dense": {"kernel": jnp.array([[1.0, -2.0]]), "bias": jnp.array([0.5, 0.5])}}
GRADS = {"dense": {"kernel": jnp.array([[0.1, 0.2]]), "bias": jnp.array([1.0, -1.0])}}


def _two_updates(name, **kw):
    tx = make_optimizer(name=name, peak_lr=0.1, schedule_factor=lambda s, *_: 1.0, momentum=0.9,
                        weight_decay=0.01, **kw)
    state = tx.init(PARAMS)
    u1, state = tx.update(GRADS, state, PARAMS)
    u2, state = tx.update(GRADS, state, PARAMS)
    return u1, u2, state


def test_momentum_with_l2_on_kernels_only():
    u1, u2, state = _two_updates("momentum")
    gk = np.array([[0.1, 0.2]]) + 0.01 * np.array([[1.0, -2.0]])   # L2 on the kernel
    np.testing.assert_allclose(u1["dense"]["kernel"], -0.1 * gk, rtol=1e-6)
    np.testing.assert_allclose(u2["dense"]["kernel"], -0.1 * (0.9 * gk + gk), rtol=1e-6)
    np.testing.assert_allclose(u1["dense"]["bias"], -0.1 * np.array([1.0, -1.0]), rtol=1e-6)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.1)


def test_nesterov():
    u1, _, _ = _two_updates("nesterov", decay_all=True)
    g = np.array([1.0, -1.0]) + 0.01 * 0.5
    np.testing.assert_allclose(u1["dense"]["bias"], -0.1 * (g + 0.9 * g), rtol=1e-6)


W = np.array([[1.0, -2.0]])
G1, G2 = np.array([[0.1, 0.2]]), np.array([[-0.3, 0.05]])
B1, B2 = np.array([1.0, -1.0]), np.array([0.5, 2.0])


def _updates(name, lr=0.1, wd=0.01, momentum=0.9, **kw):
    """Two updates of a one-layer tree at fixed parameters, gradients (G1, B1) then (G2, B2)."""
    tx = make_optimizer(name=name, peak_lr=lr, schedule_factor=lambda s, *_: 1.0,
                        momentum=momentum, weight_decay=wd, **kw)
    params = {"dense": {"kernel": jnp.asarray(W), "bias": jnp.array([0.5, 0.5])}}
    state = tx.init(params)
    out = []
    for gk, gb in ((G1, B1), (G2, B2)):
        grads = {"dense": {"kernel": jnp.asarray(gk), "bias": jnp.asarray(gb)}}
        u, state = tx.update(grads, state, params)
        out.append(jax.tree_util.tree_map(np.asarray, u)["dense"])
    return out


def test_sgd_is_minus_lr_times_gradient_plus_l2_on_kernels():
    u1, u2 = _updates("sgd", lr=0.1, wd=0.01)
    np.testing.assert_allclose(u1["kernel"], -0.1 * (G1 + 0.01 * W), rtol=1e-6)
    np.testing.assert_allclose(u2["kernel"], -0.1 * (G2 + 0.01 * W), rtol=1e-6)
    np.testing.assert_allclose(u1["bias"], -0.1 * B1, rtol=1e-6)
    np.testing.assert_allclose(u2["bias"], -0.1 * B2, rtol=1e-6)
    u1, _ = _updates("sgd", lr=0.1, wd=0.01, decay_all=True)
    np.testing.assert_allclose(u1["bias"], -0.1 * (B1 + 0.01 * 0.5), rtol=1e-6)


def _adam_reference(grads, w, *, lr, wd, b1, b2, eps, decoupled):
    """Kingma & Ba (2015) Algorithm 1 with bias correction, in float64; L2 (``wd * w`` added to
    the gradient) or decoupled decay (Loshchilov & Hutter: ``lr * wd * w`` added to the step)."""
    m = v = 0.0
    out = []
    for t, g in enumerate(grads, start=1):
        g = g if decoupled else g + wd * w
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        step = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        out.append(-lr * (step + (wd * w if decoupled else 0.0)))
    return out


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_and_adamw_two_steps_match_the_algorithm(name):
    wd = 0.3   # large, so that L2 and decoupled decay give clearly different updates
    u1, u2 = _updates(name, lr=0.1, wd=wd, momentum=0.9)
    k1, k2 = _adam_reference([G1, G2], W, lr=0.1, wd=wd, b1=0.9, b2=0.999, eps=1e-8,
                             decoupled=name == "adamw")
    np.testing.assert_allclose(u1["kernel"], k1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(u2["kernel"], k2, rtol=1e-5, atol=1e-6)
    b1, b2 = _adam_reference([B1, B2], 0.0, lr=0.1, wd=0.0, b1=0.9, b2=0.999, eps=1e-8,
                             decoupled=False)   # biases are not decayed
    np.testing.assert_allclose(u1["bias"], b1, rtol=1e-5)
    np.testing.assert_allclose(u2["bias"], b2, rtol=1e-5)
    other = _adam_reference([G1, G2], W, lr=0.1, wd=wd, b1=0.9, b2=0.999, eps=1e-8,
                            decoupled=name != "adamw")
    assert np.abs(other[1] - k2).max() > 1e-3   # the two decays are distinguishable here


def test_label_smoothing_value():
    logits = np.array([[2.0, -1.0, 0.5, 0.0]])
    log_p = logits - np.log(np.exp(logits).sum())
    for alpha in (0.0, 0.1, 0.5):
        target = (1 - alpha) * np.eye(4)[2] + alpha / 4
        expected = -(target * log_p).sum()
        got = cross_entropy(jnp.asarray(logits), jnp.array([2]), 4, alpha)
        assert float(got[0]) == pytest.approx(expected, rel=1e-6)


def test_unknown_optimizer():
    with pytest.raises(ValueError, match=r"optimizer='lamb' is not one of"):
        make_optimizer(name="lamb", peak_lr=0.1, schedule_factor=lambda s, *_: 1.0, momentum=0.9,
                       weight_decay=0.0)


def _count(model, shape):
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape)))
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(variables["params"]))


@pytest.mark.parametrize("name,classes,expected", [
    ("resnet18", 1000, 11_689_512), ("resnet50", 1000, 25_557_032)])
def test_resnet_parameter_counts_match_torchvision(name, classes, expected):
    assert _count(create_model(name, num_classes=classes), (1, 224, 224, 3)) == expected


def test_resnet20_and_caffenet_counts():
    # ResNet-20 (option B projections): 3x3 convs 16/32/64, two 1x1 projections, BN, fc.
    n = _count(create_model("resnet20", num_classes=10), (1, 32, 32, 3))
    convs = 3 * 3 * 3 * 16 + 6 * 9 * 16 * 16 + (9 * 16 * 32 + 5 * 9 * 32 * 32) \
        + (9 * 32 * 64 + 5 * 9 * 64 * 64) + 16 * 32 + 32 * 64
    bns = 2 * (7 * 16 + 7 * 32 + 7 * 64)   # stem + 2 per block (+1 projection in stages 2, 3)
    assert n == convs + bns + 64 * 10 + 10 == 272_474
    # CaffeNet-128: conv5 output 3x3x256 at 128x128 input, fc 2048-2048-1000, biases (no norm).
    n = _count(create_model("caffenet128", num_classes=1000, normalization="none"),
               (1, 128, 128, 3))
    convs = (11 * 11 * 3 * 96 + 96) + (25 * 96 * 256 + 256) + (9 * 256 * 384 + 384) \
        + (9 * 384 * 384 + 384) + (9 * 384 * 256 + 256)
    assert n == convs + (3 * 3 * 256 * 2048 + 2048) + (2048 * 2048 + 2048) + (2048 * 1000 + 1000)


def test_small_model_counts():
    # keskar_c1 (width 64, fc 384, BN without biases before it): two 5x5 convs, fc 384-192, head.
    # 32x32 input: max-pools 32 -> 16 -> 8; 8x8 digits: 8 -> 4 -> 2.
    for shape, side in (((1, 32, 32, 3), 8), ((1, 8, 8, 1), 2)):
        c_in = shape[-1]
        expected = (25 * c_in * 64 + 2 * 64) + (25 * 64 * 64 + 2 * 64) \
            + (side * side * 64 * 384 + 2 * 384) + (384 * 192 + 2 * 192) + (192 * 10 + 10)
        assert _count(create_model("keskar_c1", num_classes=10), shape) == expected
    # cnn1d (32 channels) on MNIST-1D's 40 samples: three stride-2 width-5 convs + BN, 40 -> 5.
    assert _count(create_model("cnn1d", num_classes=10, channels=32), (1, 40)) == \
        (5 * 32 + 64) + 2 * (5 * 32 * 32 + 64) + (5 * 32 * 10 + 10) == 12_202
    # mlp 64-256-256-10: biases without norm; with BN the hidden biases give way to scale+shift.
    dense = 64 * 256 + 256 * 256 + 256 * 10 + 10
    assert _count(create_model("mlp", num_classes=10, normalization="none"), (1, 8, 8, 1)) == \
        dense + 256 + 256 == 85_002
    assert _count(create_model("mlp", num_classes=10, normalization="batch"), (1, 8, 8, 1)) == \
        dense + 2 * 256 + 2 * 256


def test_resnet44_count():
    # 6n+2 = 44 layers, n = 7 basic blocks per stage, option-B 1x1 projections into stages 2, 3.
    n = _count(create_model("resnet44", num_classes=10), (1, 32, 32, 3))
    convs = 3 * 3 * 3 * 16 + 14 * 9 * 16 * 16 + (9 * 16 * 32 + 13 * 9 * 32 * 32) \
        + (9 * 32 * 64 + 13 * 9 * 64 * 64) + 16 * 32 + 32 * 64
    bns = 2 * (15 * 16 + 15 * 32 + 15 * 64)   # stem + 14 per stage (+1 projection in 2 and 3)
    assert n == convs + bns + 64 * 10 + 10 == 661_338   # He et al. Table 6: 0.66M


# Each architecture's own code paths (bottleneck and basic blocks, projections, the CIFAR stem,
# caffe pooling, dropout) at small widths and depth: the dtype plumbing is the same at full size,
# whose parameter counts are checked above without running it.
SMALL = {"resnet18": dict(stage_sizes=(1, 1, 1, 1), widths=(8, 8, 16, 16)),
         "resnet50": dict(stage_sizes=(1, 1, 1, 1), widths=(8, 8, 16, 16)),
         "resnet20": dict(stage_sizes=(1, 1, 1), widths=(8, 8, 16)),
         "resnet44": dict(stage_sizes=(2, 1, 1), widths=(8, 8, 16)),
         "caffenet128": dict(fc_width=64), "keskar_c1": dict(width=16, fc_width=32),
         "mlp": dict(hidden_sizes=(16,))}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_gives_logits_in_both_dtypes(name):
    shape = {"cnn1d": (8, 40), "mlp": (8, 8, 8, 1), "keskar_c1": (8, 8, 8, 1),
             "caffenet128": (8, 128, 128, 3)}.get(name, (8, 32, 32, 3))
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    models = {dtype: create_model(name, num_classes=7, normalization="ghost", ghost_batch_size=4,
                                  dtype=dtype, **SMALL.get(name, {}))
              for dtype in ("float32", "bfloat16")}
    # One set of float32 parameters for both (jitted: op by op, each initializer compiles alone).
    variables = jax.jit(models["float32"].init, static_argnames="train")(
        jax.random.PRNGKey(1), x, train=False)
    outs = {}
    for dtype, model in models.items():
        shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(1), x, train=False))
        assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(shapes["params"]))
        train = jax.jit(lambda v: model.apply(v, x, train=True, mutable=["batch_stats"],
                                              rngs={"dropout": jax.random.PRNGKey(2)}))
        logits, _ = train(variables)
        assert logits.shape == (8, 7) and logits.dtype == jnp.float32
        outs[dtype] = np.asarray(jax.jit(lambda v: model.apply(v, x, train=False))(variables))
    scale = np.abs(outs["float32"]).max() + 1e-3
    assert np.abs(outs["float32"] - outs["bfloat16"]).max() / scale < 0.1
