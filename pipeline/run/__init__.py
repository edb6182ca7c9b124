"""Run: ``run(cfg)``, the recipe every task shares; resuming; sweeps as parent and child runs."""
