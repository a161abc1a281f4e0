"""Detached jobs: any long work that runs as its own process (training, export, a server...).

A job is a folder that the process writes and every CLI or TUI instance reads: its events,
its status, the lock it holds while alive, its pid, a stop request and its log. `Follower`
reads a job's events as they are appended, for a terminal and for the workbench alike.
"""

from engine.jobs.follower import Follower, FollowUpdate
from engine.jobs.jobdir import JobDir, JobError, JobStatus
from engine.jobs.launch import launch_detached, request_stop

__all__ = ["Follower", "FollowUpdate", "JobDir", "JobError", "JobStatus", "launch_detached", "request_stop"]
