"""regsync's equivalent: a YAML config of what to keep copied, checked and run once or on a
schedule. A client of the copy engine (`dockyard.copy`), as regsync is of regclient."""
