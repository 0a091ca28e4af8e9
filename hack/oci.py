"""OCI image layout archives, written with the standard library.

``ctr images import`` (the lab's nodes) and registries' push tools (``crane push``,
``skopeo copy oci-archive:``) read them. Blobs are written with fixed times and owners,
JSON with sorted keys, so the same layers and config give the same digest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob(tar: tarfile.TarFile, data: bytes) -> dict[str, object]:
    digest = sha256(data)
    info = tarfile.TarInfo(f"blobs/sha256/{digest.removeprefix('sha256:')}")
    info.size, info.mtime = len(data), 0
    tar.addfile(info, io.BytesIO(data))
    return {"digest": digest, "size": len(data)}


def write_layout(
    path: Path,
    ref: str,
    config: dict[str, Any],
    layers: list[tuple[bytes, bytes]],
    annotations: dict[str, str] | None = None,
) -> str:
    """Write an OCI image layout archive at ``path`` (atomically) and return the
    manifest's digest. ``layers``: (tar, blob) pairs, the blob being the tar itself
    (media type ``tar``) or its gzip (``tar+gzip``); ``config`` gets their diff_ids.
    containerd names the imported image ``ref``."""
    config = {**config, "rootfs": {"type": "layers", "diff_ids": [sha256(t) for t, _ in layers]}}
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        layer_descs = [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar"
                + ("" if blob is layer else "+gzip"),
                **_blob(tar, blob),
            }
            for layer, blob in layers
        ]
        config_desc = {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            **_blob(tar, json.dumps(config, sort_keys=True).encode()),
        }
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc,
            "layers": layer_descs,
        }
        if annotations:
            manifest["annotations"] = annotations
        manifest_desc = {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            **_blob(tar, json.dumps(manifest, sort_keys=True).encode()),
            # containerd names the imported image after this annotation.
            "annotations": {
                "io.containerd.image.name": ref,
                "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[-1],
            },
        }
        for name, data in (
            ("oci-layout", {"imageLayoutVersion": "1.0.0"}),
            ("index.json", {"schemaVersion": 2, "manifests": [manifest_desc]}),
        ):
            raw = json.dumps(data, sort_keys=True).encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(raw), 0
            tar.addfile(info, io.BytesIO(raw))
    os.replace(tmp, path)
    return str(manifest_desc["digest"])
