"""Inference: a trained model from anywhere (checkpoint, run id, ``runs:/``, ``models:/``), the
MLflow pyfunc model, and the ``predict``, ``evaluate`` and ``generate`` sub-commands."""
