"""The OCI vocabulary: values and rules from the image and distribution specs, no I/O."""
