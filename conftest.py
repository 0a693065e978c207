"""Root conftest: real-server fixtures shared by every test tree."""

pytest_plugins = [
    "relay_testing.fixtures",
    "relay_testing.postgres",
    "relay_testing.watchdog",
]
