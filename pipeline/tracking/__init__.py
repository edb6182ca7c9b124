"""Tracking: where a run is recorded (MLflow, or nowhere), with a local journal. A tracker
knows how to log, never what a model is."""
