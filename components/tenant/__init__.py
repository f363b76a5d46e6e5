"""A tenant ("other cluster"): Cluster API objects, Talos, images, capacity, storage, policies, identity,
secrets, VPN, GitOps, apps. Imports core, the platform packages it plugs into (sso, secrets, vpn), components.identity, stacks.config.
"""
