"""The content store: blobs and upload data behind a storage driver."""
