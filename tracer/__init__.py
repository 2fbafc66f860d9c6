"""Recording concurrency: event model, per-model instrumentation, child runner, exports. No Qt."""
