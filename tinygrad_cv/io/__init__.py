"""File formats: safetensors checkpoints, plus the atomic-write helper they use."""
from .safetensors import (
    SafetensorsError,
    atomic_output,
    load,
    load_file,
    load_metadata,
    read_file,
    save,
    save_file,
)

__all__ = [
    "SafetensorsError",
    "atomic_output",
    "load",
    "load_file",
    "load_metadata",
    "read_file",
    "save",
    "save_file",
]
