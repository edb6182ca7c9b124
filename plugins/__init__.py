"""First-party plugins. The ``pipeline.plugins`` entry point imports this module, which
registers every built-in component exactly as a third-party package would."""

from plugins.embeddings import learned  # noqa: F401
from plugins.encoders import attention, cnn, rnn, scratch_lstm, transformer  # noqa: F401
from plugins.heads import classifier, lm  # noqa: F401
from plugins.poolers import attention as attention_pooler  # noqa: F401
from plugins.poolers import simple  # noqa: F401
from plugins.tokenizers import basic_english, char, word  # noqa: F401
