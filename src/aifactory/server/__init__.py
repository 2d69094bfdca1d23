"""HTTP services: the factory's API (built from the operation table) and worker hosts."""

from .app import create_app, factory_app, serving
from .worker_app import worker_app

__all__ = ["create_app", "factory_app", "serving", "worker_app"]
