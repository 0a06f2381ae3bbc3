"""The client directory's domain: a firm's client relationships and its members."""
