"""lkconv: large-kernel ConvNets with universal perception (UniRepLKNet and its peers), fast on the CPU.

The public surface::

    create_model, list_models, load_checkpoint, reparameterize_model
"""

from .models import create_model, list_models, load_checkpoint, reparameterize_model

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "load_checkpoint", "reparameterize_model", "__version__"]
