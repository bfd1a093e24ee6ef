"""Bytes on the wire: EXTENDED COPY / RECEIVE COPY RESULTS, sense data, designators, device backends."""
