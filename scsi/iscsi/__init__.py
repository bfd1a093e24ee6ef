"""An asyncio iSCSI target (RFC 7143): PDUs, login/CHAP, sessions, and the TCP server."""
