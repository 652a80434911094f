"""Job and task states, and how a job's state follows from its tasks.

Job states are the original product's: CONFIGURING, QUEUED, RUNNING, FINISHED,
FAILED, CANCELED. Tasks also have TIMEOUT (walltime exceeded), kept apart from
FAILED as Parsl does, so the user is told which limit to raise.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class JobState(StrEnum):
    CONFIGURING = "CONFIGURING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"

    @property
    def is_final(self) -> bool:
        return self in (JobState.FINISHED, JobState.FAILED, JobState.CANCELED)


class TaskState(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    CANCELED = "CANCELED"

    @property
    def is_final(self) -> bool:
        return self not in (TaskState.QUEUED, TaskState.RUNNING)


def job_state(task_states: Iterable[TaskState], canceled: bool = False) -> JobState:
    """Aggregate task states; a job fails only once nothing of it can still run."""
    states = list(task_states)
    if canceled:
        return JobState.CANCELED
    if not states:
        return JobState.CONFIGURING
    if all(s is TaskState.FINISHED for s in states):
        return JobState.FINISHED
    if any(s is TaskState.RUNNING for s in states):
        return JobState.RUNNING
    if any(s is TaskState.QUEUED for s in states):
        started = any(s.is_final for s in states)
        return JobState.RUNNING if started else JobState.QUEUED
    if any(s is TaskState.CANCELED for s in states) and not any(
        s in (TaskState.FAILED, TaskState.TIMEOUT) for s in states
    ):
        return JobState.CANCELED
    return JobState.FAILED
