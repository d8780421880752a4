"""A customized image's config, manifest and index: the base's, with the customization added."""

from __future__ import annotations

import orjson

from dockyard.build import image
from dockyard.build.model import parse_customization
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor, Platform
from dockyard.oci.digest import Digest

BASE_CONFIG = {
    "architecture": "amd64",
    "os": "linux",
    "created": "2025-01-01T00:00:00Z",
    "config": {
        "Env": ["PATH=/usr/bin", "LANG=C.UTF-8"],
        "Entrypoint": ["python3"],
        "Cmd": ["-V"],
        "Labels": {"a": "1"},
    },
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
    "history": [{"created": "2025-01-01T00:00:00Z", "created_by": "debootstrap"}],
}
CUSTOM = parse_customization(
    """
name: with curl
targets: [{destination: acme/dhi-python, tag: "3.13"}]
platforms: [linux/amd64]
environment: {LANG: C, APP_ENV: prod}
labels: {b: "2"}
entrypoint: [--verbose]
cmd: [--check]
workdir: /srv
"""
)
LAYER = image.AddedLayer(
    Descriptor(mt.OCI_LAYER_GZIP, Digest.of(b"layer"), 5),
    Digest.of(b"tar"),
    "packages: curl 7.88.1-10+deb12u8",
)


def test_the_config_keeps_the_base_and_adds_the_customization() -> None:
    config = orjson.loads(image.config(BASE_CONFIG, CUSTOM, [LAYER], user="app"))
    settings = config["config"]
    assert settings["Env"] == ["PATH=/usr/bin", "LANG=C", "APP_ENV=prod"]
    assert settings["Labels"] == {"a": "1", "b": "2"}
    assert settings["Entrypoint"] == ["python3", "--verbose"]  # appended, as Docker's
    assert settings["Cmd"] == ["-V", "--check"]
    assert settings["User"] == "app"
    assert settings["WorkingDir"] == "/srv"
    assert config["rootfs"]["diff_ids"] == ["sha256:" + "1" * 64, str(LAYER.diff_id)]
    assert config["history"][-1] == {
        "created": "2025-01-01T00:00:00Z",  # the base's time: the same inputs, the same bytes
        "created_by": "packages: curl 7.88.1-10+deb12u8",
        "comment": "dockyard customization with curl",
    }
    assert image.config(BASE_CONFIG, CUSTOM, [LAYER], "app") == image.config(
        BASE_CONFIG, CUSTOM, [LAYER], "app"
    )


def test_the_manifest_names_the_base_layers_as_they_are() -> None:
    docker_layer = {"mediaType": mt.DOCKER_LAYER_GZIP, "digest": "sha256:" + "2" * 64, "size": 9}
    base = {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST, "layers": [docker_layer]}
    config = Descriptor(mt.OCI_CONFIG, Digest.of(b"config"), 6)
    annotations = image.base_annotations("acme/dhi-python", "3.13", Digest.of(b"base"))
    body = orjson.loads(image.manifest(base, config, [LAYER], annotations))
    assert body["mediaType"] == mt.OCI_MANIFEST
    assert body["layers"][0] == {**docker_layer, "mediaType": mt.OCI_LAYER_GZIP}  # same digest
    assert body["layers"][1]["digest"] == str(LAYER.descriptor.digest)
    assert body["annotations"][image.BASE_NAME] == "acme/dhi-python:3.13"


def test_the_index_lists_each_platform() -> None:
    manifest = Descriptor(mt.OCI_MANIFEST, Digest.of(b"m"), 100)
    body = orjson.loads(
        image.index([(manifest, Platform("linux", "arm64", "v8"))], {image.BASE_DIGEST: "x"})
    )
    assert body["manifests"][0]["platform"] == {
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8",
    }
    assert body["annotations"] == {image.BASE_DIGEST: "x"}
