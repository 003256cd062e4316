"""The training job and everything that imports TensorFlow. Nothing outside ``crackops.ml`` and
``crackops.job`` (inside the job) imports this package."""
