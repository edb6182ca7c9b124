"""IndRNN for seqpipe: ``python -m pipeline encoder=indrnn`` once this package is installed."""

__version__ = "0.1.0"
