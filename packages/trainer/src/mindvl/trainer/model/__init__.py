"""The MindVL model: vision tower, projector, causal LM; forward on a PackedBatch."""

from mindvl.trainer.model.config import InferenceConfig, MindVLConfig
from mindvl.trainer.model.hf_auto import register as _register
from mindvl.trainer.model.loss import count_loss_tokens
from mindvl.trainer.model.mindvl import PARTS, ImageTokenMismatch, MindVL, ModelOutput

_register()  # ``model_type: mindvl`` becomes loadable through transformers' Auto classes

__all__ = [
    "PARTS",
    "ImageTokenMismatch",
    "InferenceConfig",
    "MindVL",
    "MindVLConfig",
    "ModelOutput",
    "count_loss_tokens",
]
