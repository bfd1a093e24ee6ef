"""Planning: image pieces -> EXTENDED COPY parameter lists -> batches.

disk           block->block (02h) lists for disk pools, batches, the image position after a copy
tape           block->stream (00h) / stream->block (01h) lists for tape pools
tape_position  where an object lies on tape, and how a failed tape backup goes on
"""
