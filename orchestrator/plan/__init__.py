"""Planning: image pieces -> EXTENDED COPY parameter lists -> batches.

disk           block->block (02h) lists for disk pools, batches, the image position after a copy
tape           block->stream (00h) / stream->block (01h) lists for tape pools, the tape format
tape_position  where an object lies on tape, and how a failed tape backup goes on
tape_records   a piece's bytes as tape records (the client-side half of the tape layout)
"""
