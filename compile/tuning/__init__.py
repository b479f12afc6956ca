"""Tuning: MetaSchedule search, and the ways records are re-used instead of searched again.

Start at :mod:`.tune` (``tune``). ``plan`` holds what a run decided before it searches, shared with
``pretune`` (the steps that re-time or re-derive records first: ``adapt``, ``batch_transfer``,
``cores_transfer``); ``measure``, ``workers``, ``rpc`` and ``fleet`` build and time candidates here
or on boards; ``database`` opens a record set as MetaSchedule's database.
"""
