"""Training: learning-rate plan and optimizer (schedules), SWA/SWAG (swag)."""
