"""JIT Access for GitHub: just-in-time Google Cloud access through pull requests."""
