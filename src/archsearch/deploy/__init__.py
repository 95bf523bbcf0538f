"""The found model, usable anywhere: checkpoints with preprocessing, predictions, exports and a model card."""

from archsearch.deploy.checkpoint import FORMAT, load_checkpoint, load_model, read_checkpoint
from archsearch.deploy.model import FoundModel, Predictions
from archsearch.deploy.preprocess import ImagePreprocess, Tokenizer

__all__ = ["FORMAT", "FoundModel", "ImagePreprocess", "Predictions", "Tokenizer", "load_checkpoint", "load_model",
           "read_checkpoint"]
