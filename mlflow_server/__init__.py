"""How the MLflow tracking server starts: `start_server()` (local default); the cluster recipe
is in mlflow_server/README.md. Imports neither mlflow nor ray.

- `server`: start, health check, shutdown; `ports`: port checks and free ports;
- `postgres`: PostgreSQL backend-store checks and a throw-away local cluster;
- `tether`: processes that end with their launcher (run as a script).
"""

from .server import ServerError, ServerHandle, default_store, find_free_port, server_command, start_server, wait_healthy

__all__ = [
    "ServerError",
    "ServerHandle",
    "default_store",
    "find_free_port",
    "server_command",
    "start_server",
    "wait_healthy",
]
