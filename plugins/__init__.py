"""First-party plugins. The ``pipeline.plugins`` entry point imports this module, which
registers every built-in component exactly as a third-party package would.

Components that need torch are *declared*: their config dataclasses (in each family's
``configs`` module, no torch) are registered now, and each class is imported the first time
a run builds it. So ``python -m pipeline --help`` and a config error never import torch.
The tokenizers need no torch and register with the class decorator.
"""

from pipeline import registry  # not its names: this package's subpackages share them
from plugins.embeddings.configs import (
    CharCNNEmbeddingConfig,
    LearnedEmbeddingConfig,
    PretrainedEmbeddingConfig,
    WordCharEmbeddingConfig,
)
from plugins.encoders.configs import (
    CNNConfig,
    LSTMAttentionConfig,
    LSTMConfig,
    RNNConfig,
    ScratchLSTMConfig,
    TransformerConfig,
)
from plugins.heads.configs import ClassifierConfig, LMHeadConfig, TaggerConfig
from plugins.poolers.configs import AttentionPoolerConfig, PoolerConfig
from plugins.tokenizers import basic_english, char, word  # noqa: F401

registry.embeddings.declare(
    "learned", LearnedEmbeddingConfig, "plugins.embeddings.learned:LearnedEmbedding"
)
registry.embeddings.declare(
    "pretrained", PretrainedEmbeddingConfig, "plugins.embeddings.pretrained:PretrainedEmbedding"
)
registry.embeddings.declare(
    "char_cnn", CharCNNEmbeddingConfig, "plugins.embeddings.characters:CharCNNEmbedding"
)
registry.embeddings.declare(
    "word_char", WordCharEmbeddingConfig, "plugins.embeddings.characters:WordCharEmbedding"
)

registry.encoders.declare("lstm", LSTMConfig, "plugins.encoders.rnn:LSTMEncoder")
registry.encoders.declare("gru", RNNConfig, "plugins.encoders.rnn:GRUEncoder")
registry.encoders.declare("rnn", RNNConfig, "plugins.encoders.rnn:ElmanEncoder")
registry.encoders.declare(
    "scratch_lstm", ScratchLSTMConfig, "plugins.encoders.scratch_lstm:ScratchLSTMEncoder"
)
registry.encoders.declare(
    "lstm_attention", LSTMAttentionConfig, "plugins.encoders.attention:LSTMAttentionEncoder"
)
registry.encoders.declare("cnn", CNNConfig, "plugins.encoders.cnn:CNNEncoder")
registry.encoders.declare(
    "transformer", TransformerConfig, "plugins.encoders.transformer:TransformerEncoder"
)

registry.poolers.declare("last", PoolerConfig, "plugins.poolers.simple:LastPooler")
registry.poolers.declare("mean", PoolerConfig, "plugins.poolers.simple:MeanPooler")
registry.poolers.declare("max", PoolerConfig, "plugins.poolers.simple:MaxPooler")
registry.poolers.declare("concat", PoolerConfig, "plugins.poolers.simple:ConcatPooler")
registry.poolers.declare("auto", PoolerConfig, "plugins.poolers.simple:AutoPooler")
registry.poolers.declare(
    "attention", AttentionPoolerConfig, "plugins.poolers.attention:AttentionPooler"
)

registry.heads.declare("classifier", ClassifierConfig, "plugins.heads.classifier:ClassifierHead")
registry.heads.declare("lm", LMHeadConfig, "plugins.heads.lm:LMHead")
registry.heads.declare("tagger", TaggerConfig, "plugins.heads.tagger:TaggerHead")
