"""Training infrastructure shared by every stage: accelerate runtime, checkpoints, schedules, logging."""
