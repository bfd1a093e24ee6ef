"""Backup and restore jobs as sans-I/O generators: the public face of the job core.

Usage by a driver::

    job = backup_job(spec)            # or restore_job(spec)
    report = run_job(job, driver.execute)

or step by step: ``op = next(job)``, then ``op = job.send(result)`` until
StopIteration carries the :class:`JobReport`.  The job never sleeps, opens
sockets or reads devices; drivers (simulator, :mod:`orchestrator.drivers.real`,
the tests' in-memory driver) carry the operations out.
"""
from orchestrator.job.backup import backup_job
from orchestrator.job.ladder import JobFailed
from orchestrator.job.report import FailoverEvent, JobReport
from orchestrator.job.restore import restore_job
from orchestrator.job.spec import BackupSpec, DeviceSpec, ObjectSpec, PathPlan, RestoreSpec, object_spec
from orchestrator.ops import run_job

__all__ = ["backup_job", "restore_job", "run_job", "BackupSpec", "RestoreSpec", "DeviceSpec", "PathPlan",
           "ObjectSpec", "object_spec", "JobReport", "FailoverEvent", "JobFailed"]
