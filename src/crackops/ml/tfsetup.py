"""Configure TensorFlow for the machine the job lands on. Call before ``import tensorflow``.

- oneDNN kernels on (``TF_ENABLE_ONEDNN_OPTS=1``) unless the user set it: TensorFlow leaves them off
  on some x86 CPUs (AMD EPYC with AVX2 only), where turning them on trains ~1.75x faster.
- thread pools sized to the CPUs the job was given (``CRACKOPS_CPUS``, else ``SLURM_CPUS_PER_TASK``,
  else the process' CPU affinity: ``crackops.contract.allocated_cpus``), not to the node's core count.
- C++ log noise down (``TF_CPP_MIN_LOG_LEVEL=2``) unless the user set it.
- bfloat16 mixed precision on CPUs with native bf16 (AVX512_BF16 / AMX), where it is faster.
"""

from __future__ import annotations

import os
from typing import Any

from crackops.contract import allocated_cpus  # noqa: F401  (the one reading of the CPU count)


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def has_native_bf16() -> bool:
    flags = cpu_flags()
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def configure_environment() -> dict[str, Any]:
    """Set environment variables TensorFlow reads at import. Returns what was decided."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    cpus = allocated_cpus()
    os.environ.setdefault("OMP_NUM_THREADS", str(cpus))
    return {"cpus": cpus, "onednn": os.environ["TF_ENABLE_ONEDNN_OPTS"],
            "tf_cpp_min_log_level": os.environ["TF_CPP_MIN_LOG_LEVEL"]}


def configure_tensorflow(mixed_precision: str = "auto") -> dict[str, Any]:
    """After import: thread pools and precision policy. Returns the settings for the manifest."""
    info = configure_environment()
    import tensorflow as tf
    import keras

    cpus = info["cpus"]
    try:
        tf.config.threading.set_intra_op_parallelism_threads(cpus)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, cpus)))
    except RuntimeError:  # already initialised in this process (tests, notebooks)
        pass
    policy = "float32"
    if mixed_precision == "bfloat16" or (mixed_precision == "auto" and has_native_bf16()
                                          and not tf.config.list_physical_devices("GPU")):
        policy = "mixed_bfloat16"
    keras.mixed_precision.set_global_policy(policy)
    info.update(intra_op_threads=cpus, precision_policy=policy,
                gpus=len(tf.config.list_physical_devices("GPU")))
    return info
