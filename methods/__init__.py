"""Method plugins: one module per method; every module here is imported by suite.plugins.discover_methods."""
