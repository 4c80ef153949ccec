"""The model zoo: the classic CNN families, paper-faithful and torchvision-compatible forms."""

from cnnlab.models.registry import ModelInfo, create_model, list_models, model_info, register_model

__all__ = ["ModelInfo", "create_model", "list_models", "model_info", "register_model"]
