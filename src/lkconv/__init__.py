"""lkconv: large-kernel ConvNets with universal perception (UniRepLKNet and its peers), fast on the CPU.

The public surface::

    create_model, list_models, load_checkpoint, reparameterize_model   # models
    train, load_run                                                     # training engine and run directories
    optimize_for_inference                                              # deployment
"""

from .models import create_model, list_models, load_checkpoint, reparameterize_model

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "load_checkpoint", "reparameterize_model", "train", "load_run",
           "optimize_for_inference", "__version__"]


def __getattr__(name: str):
    # The engine pulls in data and modality code; import it only when asked for.
    if name == "train":
        from .engine.trainer import train

        return train
    if name == "load_run":
        from .engine.run_dir import load_run

        return load_run
    if name == "optimize_for_inference":
        from .deploy.optimize import optimize_for_inference

        return optimize_for_inference
    raise AttributeError(f"module 'lkconv' has no attribute {name!r}")
