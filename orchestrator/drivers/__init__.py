"""Drivers that carry out a job's operations.

real      pyscsi devices (iscsi://, /dev/sg*, in-process) and local mode's in-process LAN pool; by seam in
          real_devices, real_mover, real_transfer, real_verify and real_tape
memory    byte arrays with rule-based fault injection (tests, simulator backend)
site      the site file: which job names are which devices and movers
snapshot  copy-on-write snapshots for in-process volumes (imagetype snapshot)
"""
