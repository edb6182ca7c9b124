"""The import path that models logged before the package layout (0.1) name in their code.

Their ``text_classifier.py`` says ``from pipeline.pyfunc_model import TextClassifierModel``;
the class lives in :mod:`pipeline.inference.pyfunc_model`.
"""

from pipeline.inference.pyfunc_model import TextClassifierModel

__all__ = ["TextClassifierModel"]
