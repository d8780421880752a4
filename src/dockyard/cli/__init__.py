"""The `dockyard` command: thin commands over the services."""
