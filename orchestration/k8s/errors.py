"""`ManifestError`: a manifest cannot be rendered from this spec and these options. Its
message names the option or the spec key, never a credential."""

from __future__ import annotations

from reid_core.errors import ReIDError


class ManifestError(ReIDError, ValueError):
    """Bad input to `compact-reid k8s manifest` (an option, the spec, a value pods cannot use)."""
