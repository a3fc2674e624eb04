"""hrcore's HTTP API: parses HTTP, calls the hrcore library, nothing else."""

from hrcore_api.app import create_app

__all__ = ["create_app"]
