"""The training job and everything that imports TensorFlow. Imported lazily: by ``crackops.job``
(inside the job) and by ``crackops.api`` for predict and Grad-CAM. It never imports the API, the
registry or ``crackops.job``; the run contract (``crackops.contract``) is what it shares with them."""
