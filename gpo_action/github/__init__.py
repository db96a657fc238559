"""GitHub: the event that triggered a run, workflow commands, and (later) the REST client."""
