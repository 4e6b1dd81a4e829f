"""Optimizers against hand-computed updates; model registry shapes and parameter counts."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bsgap.models import MODELS, create_model
from bsgap.optim import make_optimizer

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


def test_nesterov_and_sgd():
    u1, _, _ = _two_updates("nesterov", decay_all=True)
    g = np.array([1.0, -1.0]) + 0.01 * 0.5
    np.testing.assert_allclose(u1["dense"]["bias"], -0.1 * (g + 0.9 * g), rtol=1e-6)
    u1, u2, _ = _two_updates("sgd")
    np.testing.assert_allclose(u1["dense"]["bias"], u2["dense"]["bias"])


def test_adam_first_step_is_sign_times_lr():
    u1, _, _ = _two_updates("adam")
    np.testing.assert_allclose(u1["dense"]["bias"], [-0.1, 0.1], rtol=1e-5)


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


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_gives_logits_in_both_dtypes(name):
    shape = {"cnn1d": (8, 40), "mlp": (8, 8, 8, 1), "keskar_c1": (8, 8, 8, 1),
             "caffenet128": (8, 128, 128, 3)}.get(name, (8, 32, 32, 3))
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    outs = {}
    for dtype in ("float32", "bfloat16"):
        model = create_model(name, num_classes=7, normalization="ghost", ghost_batch_size=4,
                             dtype=dtype, **({"hidden_sizes": (16,)} if name == "mlp" else {}))
        variables = model.init(jax.random.PRNGKey(1), x, train=False)
        logits, _ = model.apply(variables, x, train=True, mutable=["batch_stats"],
                                rngs={"dropout": jax.random.PRNGKey(2)})
        assert logits.shape == (8, 7) and logits.dtype == jnp.float32
        assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(variables["params"]))
        outs[dtype] = np.asarray(model.apply(variables, x, train=False))
    scale = np.abs(outs["float32"]).max() + 1e-3
    assert np.abs(outs["float32"] - outs["bfloat16"]).max() / scale < 0.1
