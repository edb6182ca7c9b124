"""Config: the core groups' schemas (in Hydra's ConfigStore), override checks, ``--help``, and the
sub-commands' ``key=value`` parser. Imports no torch."""
