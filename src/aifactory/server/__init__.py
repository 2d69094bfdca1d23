"""HTTP services: the factory's API (built from the operation table) and worker hosts."""

from .app import create_app, factory_app, serving

__all__ = ["create_app", "factory_app", "serving"]
