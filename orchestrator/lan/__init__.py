"""Local mode's LAN data path: the frame protocol, the in-process pool and its client.

frames       the frame layout (also read by the backup server's wire protocol)
endpoints    where an in-process pool is found by its address (local:N); no listener
local_pool   the pool volumes and tape drives as the server side of local mode opens them
client       the job's end of a session
tape_server  the tape side: pieces laid as tape records on the pool's drive

Over the network, data moves only through the authenticated backup server (orchestrator.server).
"""
