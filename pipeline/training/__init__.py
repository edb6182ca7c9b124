"""Training: the one loop (``loop.fit``) for every task, the EpochBook, the optimizer step,
interrupts and resume points, schedules, progress, callbacks, the run context."""
