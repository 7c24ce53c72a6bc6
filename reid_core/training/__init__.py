"""Training: the Trainer (trainer), learning-rate plan and optimizer (schedules), SWA/SWAG (swag)."""
