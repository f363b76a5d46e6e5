"""Identity (single sign-on): Authentik itself and the cluster RBAC for the identities it vouches for.
Imports core, edge, the Authentik objects (components.identity) and stacks.config.
"""
