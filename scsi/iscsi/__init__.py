"""An asyncio iSCSI target (RFC 7143): PDUs, login/CHAP, sessions, and the TCP server.

Public entry points:

- :class:`scsi.iscsi.server.IscsiServer` ``(nodes, host, port, *, limits=None, io_threads=8)``:
  ``await start()`` / ``serve_forever()`` / ``close()``; ``.port`` is the bound port.
- :class:`scsi.iscsi.node.TargetNode` ``(name, handler, allows, chap_for, alias, lun_exists,
  session_closed)``: what the server serves; ``handler`` is a :class:`scsi.result.CommandHandler`.
- :class:`scsi.iscsi.harness.ThreadedTarget` ``(nodes, host="127.0.0.1", port=0)``: the server on a
  background loop for tests, benchmarks and tools (``with ThreadedTarget(...) as t: t.port``).
- :class:`scsi.iscsi.initiator.Initiator`: a minimal asyncio initiator for probing the target.
"""
