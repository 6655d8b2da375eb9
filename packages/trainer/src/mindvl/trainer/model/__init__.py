"""The MindVL model: vision tower, projector, causal LM; forward on a PackedBatch."""

from mindvl.trainer.model.config import InferenceConfig, MindVLConfig
from mindvl.trainer.model.loss import count_loss_tokens
from mindvl.trainer.model.mindvl import PARTS, ImageTokenMismatch, MindVL, ModelOutput

__all__ = [
    "PARTS",
    "ImageTokenMismatch",
    "InferenceConfig",
    "MindVL",
    "MindVLConfig",
    "ModelOutput",
    "count_loss_tokens",
]
