"""kernels/: the repo's own Triton kernels (see kernels/README.md)."""
from .flash_attention import flash_attention

__all__ = ["flash_attention"]
