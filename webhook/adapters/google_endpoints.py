"""Where the Google APIs are: their public endpoints, or a local emulator's.

Kept apart from `google_clients` so that the settings can name endpoints without importing the
Google client libraries: importing those takes about 0.2 s, which `import webhook.main` defers
until the first delivery (or App Engine's warmup request).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GoogleEndpoints:
    """API endpoints; None means Google's public endpoint."""

    resource_manager: str | None = None
    cloud_asset: str | None = None
    cloud_logging: str | None = None
    cloud_identity: str | None = None

    @property
    def emulated(self) -> bool:
        """True when any endpoint is a plain-HTTP emulator."""
        return any(
            e is not None and e.startswith("http://")
            for e in (self.resource_manager, self.cloud_asset, self.cloud_logging,
                      self.cloud_identity)
        )
