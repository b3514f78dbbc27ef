"""Online side: read uv's download catalog, resolve requests, fetch archives and build bundles."""
