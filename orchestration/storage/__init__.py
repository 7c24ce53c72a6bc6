"""Storage: where everything lives that another node, or a later driver, reads.

A sweep names one storage location (`--storage`: a path, `s3://BUCKET/PREFIX` or
`gs://BUCKET/PREFIX`); local disk is only a cache.
- `uri`: `StorageURI` (parsed, credentials refused), its pyarrow filesystem (endpoint and
  credentials from the environment), `redact`;
- `store`: `Store`, files under a URI: read, write, list, upload, download, retried while
  the object store is unreachable;
- `check`: `check_storage`, the preflight (reachable, bucket, credentials, write permission);
- `staging`: `stage`, datasets from object storage staged once per node, verified;
- `errors`: `StorageError`.
Imports neither Ray nor MLflow; pyarrow is imported where a filesystem is built.
"""

from .errors import StorageError
from .uri import StorageURI, redact

__all__ = ["StorageError", "StorageURI", "redact"]
