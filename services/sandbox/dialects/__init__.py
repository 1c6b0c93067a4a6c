"""One module per platform dialect of docs/platform-apis.md: its routes and its callbacks."""
