"""Per-request DataLoaders, one module per domain, named `<Result>By<Key>Loader`."""
