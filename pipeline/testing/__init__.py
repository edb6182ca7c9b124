"""Conformance kits for plugin authors, one per component kind: ``check_encoder`` for
encoders, ``check_task`` for tasks. Every built-in passes its kit in our tests."""

from pipeline.testing.encoder import EncoderCheckError, EncoderReport, check_encoder
from pipeline.testing.task import TaskReport, check_task

__all__ = ["EncoderCheckError", "EncoderReport", "TaskReport", "check_encoder", "check_task"]
