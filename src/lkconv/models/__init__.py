"""Model families, the registry and the model protocol."""

from ._checkpoint import CheckpointMismatchError, checkpoint_structure, load_checkpoint, load_state_dict_file
from ._registry import create_model, is_model, list_models, model_entrypoint, model_family, register_model
from ._reparam import is_deploy_structure, reparameterize_model

__all__ = [
    "create_model", "list_models", "is_model", "model_entrypoint", "model_family", "register_model",
    "load_checkpoint", "load_state_dict_file", "checkpoint_structure", "CheckpointMismatchError",
    "reparameterize_model", "is_deploy_structure",
]
