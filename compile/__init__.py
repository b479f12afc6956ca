"""Compile side: import into Relax, tune with MetaSchedule, build deployable artifacts."""
