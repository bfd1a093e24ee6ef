from tests.fixtures.backup_server import server  # noqa: F401 (fixture)
