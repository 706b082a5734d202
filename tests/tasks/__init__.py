"""Tests of t5x_xfer.tasks."""
