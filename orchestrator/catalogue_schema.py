"""The catalogue's SQLite tables (objects, their extent blocks and chunk digests) and which states are visible."""
from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS filespaces (
    id INTEGER PRIMARY KEY, node_id INTEGER NOT NULL REFERENCES nodes(id),
    name TEXT NOT NULL, UNIQUE (node_id, name));
CREATE TABLE IF NOT EXISTS pool_volumes (
    id INTEGER PRIMARY KEY, pool TEXT NOT NULL, name TEXT NOT NULL UNIQUE, device TEXT NOT NULL,
    capacity INTEGER NOT NULL CHECK (capacity >= 0), next_offset INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS objects (
    id INTEGER PRIMARY KEY,
    filespace_id INTEGER NOT NULL REFERENCES filespaces(id),
    mode TEXT NOT NULL CHECK (mode IN ('selective', 'incremental')),
    image_type TEXT NOT NULL,
    management_class TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'inactive', 'abandoned')),
    base_id INTEGER REFERENCES objects(id),
    pool_volume_id INTEGER NOT NULL REFERENCES pool_volumes(id),
    pool_offset INTEGER NOT NULL,
    image_size INTEGER NOT NULL,
    volume_size INTEGER NOT NULL,
    file_system TEXT NOT NULL,
    path_used TEXT,
    compressed INTEGER NOT NULL DEFAULT 0,
    stored_size INTEGER,
    started TEXT NOT NULL,
    backup_date TEXT,
    note TEXT,
    tape_location TEXT);
CREATE INDEX IF NOT EXISTS objects_fs ON objects(filespace_id, state);
CREATE TABLE IF NOT EXISTS extents (
    object_id INTEGER NOT NULL REFERENCES objects(id), idx INTEGER NOT NULL,
    image_offset INTEGER NOT NULL, volume_offset INTEGER NOT NULL, length INTEGER NOT NULL,
    compressed INTEGER NOT NULL, stored_length INTEGER NOT NULL,
    PRIMARY KEY (object_id, idx));
CREATE TABLE IF NOT EXISTS extent_blocks (
    object_id INTEGER NOT NULL REFERENCES objects(id), block INTEGER NOT NULL,
    image_offset INTEGER NOT NULL, count INTEGER NOT NULL CHECK (count > 0), data BLOB NOT NULL,
    PRIMARY KEY (object_id, block));
CREATE TABLE IF NOT EXISTS digests (
    object_id INTEGER NOT NULL REFERENCES objects(id), chunk INTEGER NOT NULL, digest TEXT NOT NULL,
    PRIMARY KEY (object_id, chunk));
CREATE TABLE IF NOT EXISTS digest_blocks (
    object_id INTEGER NOT NULL REFERENCES objects(id), block INTEGER NOT NULL,
    first_chunk INTEGER NOT NULL, count INTEGER NOT NULL CHECK (count > 0), data BLOB NOT NULL,
    PRIMARY KEY (object_id, block));
"""

VISIBLE = ("active", "inactive")  # states a query lists: restorable objects
