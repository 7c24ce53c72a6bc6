"""How the MLflow tracking server starts: `start_server()` (local default); the cluster recipe
is in mlflow_server/README.md. Imports neither mlflow nor ray.

- `server`: start, health check, shutdown; `ports`: port checks and free ports;
- `postgres`: PostgreSQL backend-store checks and a throw-away local cluster.

Both servers run under a tether (the `process_tether` package), so they end with their launcher.
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
