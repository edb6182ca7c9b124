"""Reporting: metrics, plots and the classification reports a run writes."""
