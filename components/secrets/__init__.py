"""Secrets: Vault (HA, raft, TLS) and what lives inside it (mounts, auth, policies).
Imports core, edge, sso, operations, components.identity and .vault_bootstrap, and stacks.config.
"""
