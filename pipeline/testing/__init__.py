"""Conformance kits for plugin authors, one per component kind: ``check_encoder``,
``check_pooler``, ``check_embedding``, ``check_tokenizer``, ``check_head`` and ``check_task``.
Every built-in passes its kit in our tests. Each returns a :class:`Report` naming every failed
check and what differed (``.assert_ok()`` raises); none crashes on a broken component."""

from pipeline.testing.embedding import check_embedding
from pipeline.testing.encoder import EncoderCheckError, EncoderReport, check_encoder
from pipeline.testing.head import check_head
from pipeline.testing.pooler import check_pooler
from pipeline.testing.report import CheckError, Report
from pipeline.testing.task import TaskReport, check_task
from pipeline.testing.tokenizer import check_tokenizer

__all__ = [
    "CheckError",
    "EncoderCheckError",
    "EncoderReport",
    "Report",
    "TaskReport",
    "check_embedding",
    "check_encoder",
    "check_head",
    "check_pooler",
    "check_task",
    "check_tokenizer",
]
