"""Run: ``run(cfg)``, the recipe every task shares; resuming; sweeps as parent and child runs.

Importing it registers the config's ``${run_token:}`` resolver (the unique part of every
output folder), so that Hydra can resolve ``hydra.run.dir`` wherever a job runs.
"""

from pipeline.run.recording import register_resolvers

register_resolvers()
