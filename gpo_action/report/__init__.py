"""Reports built from result objects: terminal renderables, JSON. Nothing here prints."""
