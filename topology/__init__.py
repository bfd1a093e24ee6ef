"""The SAN as data: hosts, ports, zones, LUN masking, movers, pools; path verification."""
