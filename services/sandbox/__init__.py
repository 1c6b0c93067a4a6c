"""Platform sandbox: a stand-in for platforms' reporting APIs in development and tests."""
