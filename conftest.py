"""Root conftest: real-server fixtures shared by every test tree."""

pytest_plugins = [
    "relay_testing.fixtures",
    "relay_testing.postgres",
    "relay_testing.seaweedfs",
    "relay_testing.smtp",
    "relay_testing.sftp",
    "relay_testing.azurite",
    "relay_testing.webhooks",
]
