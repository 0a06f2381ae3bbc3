"""Use cases of the client directory: recording inbound facts and the portal's commands."""
