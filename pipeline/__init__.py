"""A plugin-based NLP pipeline for sequence models (Hydra + PyTorch + MLflow)."""

__version__ = "0.1.0"
