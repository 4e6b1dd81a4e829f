"""Default: a 1-D CNN with ghost batch norm (groups of 16) on MNIST-1D (4k train / 1k test),
offline; the run takes under a minute on 2 CPU cores.

Every field here is the full set a run understands; other configs start from this one and
override. Optional fields are ``placeholder(object)`` so that ``--config.x=None`` or ``=16`` both
parse on the command line.
"""
import ml_collections
from ml_collections.config_dict import placeholder


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    # Data.
    c.dataset = "mnist1d/small"         # TFDS name; embedded: mnist1d/small|large, sklearn_digits, digits32
    c.data_dir = placeholder(object)    # TFDS data dir (None: $TFDS_DATA_DIR or ~/tensorflow_datasets)
    c.manual_dir = placeholder(object)  # manual downloads (imagenet2012 tars); image_folder root
    c.download = False                  # let TFDS download + prepare a missing dataset (network)
    c.train_split = "train"
    c.eval_split = "test"
    c.eval_batch_size = 1000            # global; the last batch is padded and masked
    c.augment = "none"                  # none | cifar | mishkin | inception (bsgap/data/augment.py)
    c.image_size = placeholder(object)  # output side S (None: the dataset's own shape)
    c.pixel_mean = ()                   # per channel, on [0, 1] pixels; () = no standardization
    c.pixel_std = ()
    c.cache = "auto"                    # auto | memory | none: decoded split in host memory
    c.shuffle_buffer = 10_000           # streamed datasets: records per shuffle window
    c.data_threads = 48                 # tf.data private thread pool, 1 thread per op (0: uncapped)
    c.image_transfer = "auto"           # auto | uint8 | float32: how images go to the devices
    c.device_resident_bytes = 64 << 20  # in-memory splits kept on each device up to this (0: none)
    # Model.
    c.model = "cnn1d"
    c.model_kwargs = ml_collections.ConfigDict({"channels": 32})
    c.normalization = "ghost"           # none | batch | ghost
    c.ghost_batch_size = placeholder(object)   # examples per BN group (None: the microbatch)
    c.ghost_batch_size = 16             # the study's: the BN batch is 16 at every B and layout
    c.dropout_rate = 0.0
    c.dtype = "float32"                 # float32 | bfloat16 (bf16 compute, fp32 params and loss)
    c.matmul_precision = placeholder(object)   # None: JAX default; highest|high|... (choices.py)
    # Batch layout.
    c.batch_size = 128                  # global batch B
    c.microbatch_size = placeholder(object)    # per device per accumulation step; None | int | 'auto'
    c.num_devices = 0                   # 0 = all devices
    c.memory_limit_bytes = placeholder(object) # for microbatch_size='auto' (None: the device's)
    c.memory_headroom_fraction = 0.1    # 'auto' leaves this share of the limit free (bsgap/memory.py)
    # Learning rate and budget.
    c.optimizer = "momentum"            # sgd | momentum | nesterov | adam | adamw
    c.learning_rate = 0.05              # at reference_batch_size
    c.reference_batch_size = 128
    c.lr_scaling = "none"               # none | linear | sqrt
    c.momentum = 0.9                    # (adam/adamw: beta1)
    c.weight_decay = 5e-4
    c.decay_all_params = False          # weight decay on biases and norm parameters too
    c.label_smoothing = 0.0
    c.warmup_epochs = 0.0
    c.schedule = "cosine"               # constant | step | cosine | linear | poly
    c.schedule_milestones = ()          # step schedule boundaries in epochs
    c.schedule_milestone_fractions = () # ... or as fractions of the budget
    c.schedule_gamma = 0.1
    c.poly_power = 2.0
    c.regime_adaptation = False         # Hoffer et al.: epochs and milestones x B/reference
    c.num_epochs = placeholder(object)  # exactly one of num_epochs / num_examples / num_steps
    c.num_examples = placeholder(object)
    c.num_steps = placeholder(object)
    c.num_epochs = 30
    c.seed = 0
    c.data_seed = placeholder(object)   # data order (None: seed); equal data seeds share batches
    c.trials = placeholder(object)      # tuple of dicts of per-trial overrides: K trials, one program
    # Evaluation, stopping, logging.
    c.target_accuracy = placeholder(object)    # fraction; records steps/examples/seconds to it
    c.target_accuracy = 0.9
    c.stop_at_target = False
    c.patience_evals = placeholder(object)     # stop after this many evals without a new best
    c.log_every_steps = 25
    c.eval_every_steps = placeholder(object)   # None: once per epoch
    c.checkpoint_every_steps = 500
    c.keep_checkpoints = 2
    c.noise_ema_decay = 0.95            # EMA of the online two-batch noise estimators
    c.tensorboard = True
    c.progress_bar = True
    c.compilation_cache_dir = placeholder(object)  # JAX's persistent cache dir (None: JAX's own)
    return c
