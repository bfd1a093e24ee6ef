"""The LAN data path: the frame protocol, the backup server that writes the pool, and its client.

server       frames, the server (disk pools) and the client
tape_server  the tape-pool side of the server: pieces laid as tape records on the server's drive
"""
