"""Platform adapters: plugins with a slug, a config model and one contract test suite."""
