"""Data: labelled sets and corpora from local copies or the Hub, tokenization with its cache,
length-bucketed batches, and parallel streams for language models."""
