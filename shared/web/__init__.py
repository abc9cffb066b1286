"""HTTP plumbing both web services use: the one-write protocol, error handlers, OpenAPI
assembly and metrics."""
