"""Model: assembly of the registered components (embedding -> encoder -> pooler -> head), the
typed checkpoint, and sampling from language models."""
