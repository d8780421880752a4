"""Alpine packages for customizations, without apk: signed indexes, resolution, .apk files."""
