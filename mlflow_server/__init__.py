"""How the MLflow tracking server starts: `start_server()` (local default) and the cluster
recipe in README.md. Imports neither mlflow nor ray."""
from .server import ServerError, ServerHandle, default_store, find_free_port, server_command, start_server, wait_healthy

__all__ = ["ServerError", "ServerHandle", "default_store", "find_free_port", "server_command", "start_server",
           "wait_healthy"]
