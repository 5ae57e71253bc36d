"""Live campaign progress: the per-process hub over Redis pub/sub and the per-key caps."""
