"""Reading the `creds` section of the sync config: how to reach each registry, who to be there."""

from __future__ import annotations

import ssl
from collections.abc import Mapping

import yaml

from dockyard.client.settings import TLSMode, normalize_registry
from dockyard.sync.keys import CREDS_KEYS, UNSUPPORTED_CREDS
from dockyard.sync.model import RegistryCreds, Where
from dockyard.sync.nodes import NodeReader


class CredsReader(NodeReader):
    """Reads `creds` entries."""

    def creds(self, node: yaml.Node | None) -> tuple[RegistryCreds, ...]:
        seen: dict[str, Where] = {}
        return tuple(
            self.credential(i, item, seen) for i, item in enumerate(self.items(node, "creds"))
        )

    def credential(self, i: int, item: yaml.Node, seen: dict[str, Where]) -> RegistryCreds:
        """One `creds` entry (`seen`: where each registry's creds were given so far)."""
        path = f"creds[{i}]"
        keys = self.mapping(item, path, CREDS_KEYS, UNSUPPORTED_CREDS)
        name_node = keys.get("registry", keys.get("hostname"))
        if name_node is None or not self.string(name_node, path):
            self.fail(item, path, "needs `registry` (the registry's name in references)")
        registry = self.template(name_node, f"{path}.registry")
        try:
            name = normalize_registry(registry)
        except ValueError as exc:
            self.fail(name_node, f"{path}.registry", str(exc))
        hostname = None
        if "registry" in keys and "hostname" in keys:
            hostname = self.template(keys["hostname"], f"{path}.hostname").strip() or None
            if hostname is not None and ("/" in hostname or not hostname):
                self.fail(keys["hostname"], f"{path}.hostname", "must be host[:port]")
            if hostname == name:
                hostname = None
        if name in seen:
            self.fail(item, path, f"creds for {name} are already given on line {seen[name].line}")
        seen[name] = self.where(item)
        tls = self.tls(keys, path)
        regcert = None
        if "regcert" in keys:
            regcert = self.template(keys["regcert"], f"{path}.regcert") or None
            if regcert is not None:
                self.check_pem(keys["regcert"], f"{path}.regcert", regcert)
        return RegistryCreds(
            registry=name,
            hostname=hostname,
            user=self.template(keys["user"], f"{path}.user") if "user" in keys else None,
            password=self.template(keys["pass"], f"{path}.pass") if "pass" in keys else None,
            tls=tls,
            regcert=regcert,
            req_per_sec=self.number(keys["reqPerSec"], f"{path}.reqPerSec")
            if "reqPerSec" in keys
            else None,
            req_concurrent=self.integer(keys["reqConcurrent"], f"{path}.reqConcurrent")
            if "reqConcurrent" in keys
            else None,
            blob_chunk=self.integer(keys["blobChunk"], f"{path}.blobChunk")
            if "blobChunk" in keys
            else None,
            where=self.where(item),
        )

    def tls(self, keys: Mapping[str, yaml.Node], path: str) -> TLSMode | None:
        mode: TLSMode | None = None
        if "tls" in keys:
            text = (self.string(keys["tls"], f"{path}.tls") or "").lower()
            if text:
                try:
                    mode = TLSMode(text)
                except ValueError:
                    self.fail(
                        keys["tls"],
                        f"{path}.tls",
                        f"must be enabled, insecure or disabled, not {text!r}",
                    )
        if "scheme" in keys:  # deprecated in regclient: http means tls: disabled
            scheme = (self.string(keys["scheme"], f"{path}.scheme") or "").lower()
            if scheme not in ("", "http", "https"):
                self.fail(
                    keys["scheme"], f"{path}.scheme", f"must be http or https, not {scheme!r}"
                )
            if scheme == "http" and mode is None:
                mode = TLSMode.DISABLED
        return mode

    def check_pem(self, node: yaml.Node, path: str, pem: str) -> None:
        try:
            ssl.create_default_context().load_verify_locations(cadata=pem)
        except (ssl.SSLError, ValueError) as exc:
            self.fail(node, path, f"is not a PEM certificate the TLS library accepts: {exc}")
