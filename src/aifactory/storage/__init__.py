"""Blob storage: bytes placed inline, in KV namespaces or in R2 buckets, on any fsspec filesystem.

```python
store = BlobStore(StorageConfig.memory())
ref = store.put(b"...", namespace="reports", key="r1/summary.md", media_type="text/markdown")
assert store.get(ref) == b"..."
```

`PlacementPolicy` decides the scheme by size, `StorageConfig` says where each namespace and
bucket lives (`memory://` in tests, a local folder embedded, `s3://` with s3fs when deployed),
and `BlobStore` reads and writes, verifying size and sha256 on every read. With
`StorageConfig(encryption_keys=StorageKey.generate("k1"))` every KV and R2 blob is encrypted
at rest (AES-256-GCM, `aifactory.storage.encryption`).
"""

from .blobs import BlobStore
from .encryption import StorageKey
from .placement import PlacementPolicy, StorageConfig

__all__ = ["BlobStore", "PlacementPolicy", "StorageConfig", "StorageKey"]
