"""An async OCI client: remote registries and OCI layout directories behind one protocol."""
