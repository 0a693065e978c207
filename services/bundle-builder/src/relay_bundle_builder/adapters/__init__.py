"""I/O adapters of the bundle-builder: asset fetching over HTTP and the bundle store."""
