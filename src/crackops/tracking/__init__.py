"""Standard tracking: what crackops records, published where a lab already looks.

Offline-first: the job only writes files (``out/<job_id>/tensorboard/``, the manifest, the backup);
the login node or the laptop publishes them.

- ``record``: one run (or sweep) as the fields an experiment tracker holds (params, per-epoch
  metric steps, final metrics, tags, artifacts), pure, from the registry row and the run's files;
  ``MAPPING`` documents which crackops key becomes which MLflow field and TensorBoard tag.
- ``mlflow_export``: those records sent to an MLflow tracking server (the optional ``mlflow``
  extra, imported only there), idempotent by a tag holding the crackops run key.
- ``tensorboard``: the ``--logdir_spec`` of some runs' event files, and TensorBoard started on it.
- ``settings``: a profile's ``[tracking]`` table (export at ``collect``).

No TensorFlow, no MLflow at import.
"""
