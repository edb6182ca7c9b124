"""Runtime: the device and autocast dtype, torchrun's process group, seeding, carried state."""
