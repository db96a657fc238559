"""All model calls go through this package: the client, its cache, and the providers litellm lacks."""
