"""The Clients page of the partner portal (`/portal`): static HTML, CSS and JavaScript that
call only the public API, plus the dev-mode helpers of a local run (`/dev/...`)."""

from services.client_directory.adapters.portal.router import mount_portal

__all__ = ["mount_portal"]
