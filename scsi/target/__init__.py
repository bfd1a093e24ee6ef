"""SCSI target side: LUN command emulation, the target's LUN map and ACL, and its configuration.

Public entry points:

- :func:`scsi.target.config.load_config` ``(path) -> TargetConfig`` / ``parse_config(dict, source)``:
  validated YAML config (portal, target IQN, CHAP, LUNs, per-initiator ACL); ValueError says where.
- :func:`scsi.target.build.build_target` ``(cfg, *, luns=None, copy_manager=None,
  with_copy_manager=False) -> BuiltTarget`` (``.node`` for the iSCSI server, ``.scsi``, ``.devices``,
  ``.luns``, ``.counters()``, ``.close()``).
- :class:`scsi.target.blockdev.BlockLunDevice` ``(lun, *, copy_manager=None, accepts_xcopy=False)`` and
  :class:`scsi.target.tapedev.TapeLunDevice`: one LUN as a CommandHandler.
- :class:`scsi.target.scsitarget.ScsiTarget` ``(name, devices, acl)``: REPORT LUNS, ACL, routing.
"""
