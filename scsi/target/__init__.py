"""SCSI target side: LUN command emulation, the target's LUN map and ACL, and its configuration."""
