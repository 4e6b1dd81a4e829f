"""The names a config may choose among, kept free of JAX and TensorFlow imports.

``bsgap.train`` validates a config against these before it imports anything heavy, so a bad value
is refused in well under a second; the registries that use them (models, optimizers, norm layers)
import them from here, and a test keeps both in step.
"""
MODEL_NAMES = ("mlp", "keskar_c1", "cnn1d", "caffenet128", "resnet18", "resnet50", "resnet20",
               "resnet44")
# Models with convolutions: vmapped trials of them become grouped convolutions (bsgap/trials.py).
CONV_MODELS = ("keskar_c1", "cnn1d", "caffenet128", "resnet18", "resnet50", "resnet20", "resnet44")
DTYPE_NAMES = ("float32", "bfloat16")
# jax_default_matmul_precision's named levels for float32 matmuls and convolutions (config
# ``matmul_precision``; None leaves JAX's default: one bf16 pass on TPU, TF32 on new GPUs).
MATMUL_PRECISIONS = ("default", "high", "highest", "bfloat16", "tensorfloat32", "float32")
# How images travel to the devices (config ``image_transfer``; bsgap/data/transfer.py).
IMAGE_TRANSFERS = ("auto", "uint8", "float32")
NORM_KINDS = ("none", "batch", "ghost")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
# How the step computes (CLI flags of bsgap.train; bsgap/accumulation.py, bsgap/models/conv_grad.py).
ACCUMULATION_LOOPS = ("auto", "none", "unroll", "scan")
CONV_GRADIENTS = ("auto", "canonical", "xla")
