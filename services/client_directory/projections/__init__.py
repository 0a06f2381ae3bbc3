"""Read models of the client directory, projected from its event store."""
