"""t5x_xfer: staged intermediate-task fine-tuning of Flax T5 models and HumanEval-X evaluation."""

__version__ = "0.1.0"
