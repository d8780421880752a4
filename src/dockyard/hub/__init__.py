"""The product on top of the registry: catalog, mirrors, jobs, webhooks."""
