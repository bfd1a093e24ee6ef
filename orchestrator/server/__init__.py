"""The backup server: one process that owns the catalogue, the pools and the definitions.

wire      frames (a declared header, a pydantic-validated JSON message, optional data) and their limits
auth      salted scrypt verifiers and the challenge-response (SCRAM, RFC 5802, with scrypt)
store     SQLite in the server's directory: administrators, nodes, policy, definitions, activity log
tls       the self-signed certificate made on first start and the client's fingerprint pin
commands  the administrative command language (dsmadmc spelling) and its answers
service   the TCP server: sessions, authentication, dispatch
client    the client end of a session (nodes and administrators)
"""
