"""crackops: run, track and compare a concrete-crack CNN on Slurm or on a laptop.

The Python API (``crackops.api``) is the product; the ``crackops`` command formats its results.
Importing this package never imports TensorFlow.
"""

__version__ = "0.1.0"
