"""Drivers that carry out a job's operations: real (pyscsi devices, sockets) and in-memory."""
