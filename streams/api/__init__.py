"""The HTTP API: authentication and authorization rules (`streams.api.auth`)."""
