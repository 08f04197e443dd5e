"""recommender: which pre-trained model to fine-tune, without fine-tuning them all."""

__version__ = "0.1.0"
