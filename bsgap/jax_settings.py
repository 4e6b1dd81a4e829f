"""Process-wide JAX settings a run config chooses: matmul precision and the compilation cache.

Both go through ``jax.config`` before the trainer compiles anything, and what is in effect is
recorded in config.json's ``environment`` (``jax_settings``):

  * ``matmul_precision`` -> ``jax_default_matmul_precision``: the precision of float32 matmuls and
    convolutions. ``None`` leaves JAX's default, which is not float32 everywhere: on a TPU a float32
    matmul is one bfloat16 pass, on recent NVIDIA GPUs it may use TF32. ``'highest'`` (or
    ``'float32'``) asks for full float32, ``'high'`` / ``'tensorfloat32'`` for the middle ground.
  * ``compilation_cache_dir`` -> ``jax_compilation_cache_dir``: JAX's persistent compilation cache,
    so each trial process of a sweep (and every candidate of the ``'auto'`` microbatch search)
    loads programs compiled before instead of compiling them again. A directory on the shared
    filesystem serves every host; ``None`` leaves JAX's own setting (off, unless
    ``JAX_COMPILATION_CACHE_DIR`` is set). JAX caches only programs that took at least
    ``jax_persistent_cache_min_compile_time_secs`` (1 s by default) to compile. The cache is
    trusted code: use a directory only you can write to.
"""
from __future__ import annotations

import jax


def use_compilation_cache(path: str) -> None:
    """Point JAX's persistent compilation cache at ``path`` (created by JAX on first write). JAX
    opens its cache once, at the first compile; a cache opened before (another directory) is
    reset so that this one takes effect from the next compile."""
    if jax.config.jax_compilation_cache_dir == path:
        return
    from jax.experimental.compilation_cache import compilation_cache

    jax.config.update("jax_compilation_cache_dir", path)
    compilation_cache.reset_cache()


def apply_jax_settings(config) -> dict:
    """Set what ``config`` asks for (fields absent or None: JAX's own settings stay) and return
    what is in effect, for config.json."""
    precision = config.get("matmul_precision")
    if precision is not None:
        jax.config.update("jax_default_matmul_precision", precision)
    cache_dir = config.get("compilation_cache_dir")
    if cache_dir:
        use_compilation_cache(str(cache_dir))
    return jax_settings()


def jax_settings() -> dict:
    """The settings in effect (None: JAX's default; for the precision, the platform's)."""
    return {"jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
            "jax_compilation_cache_dir": jax.config.jax_compilation_cache_dir}
