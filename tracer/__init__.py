"""Recording concurrency: the event model, instrumentation per model, the child runner and exports. No Qt."""
