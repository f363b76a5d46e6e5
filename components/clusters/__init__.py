"""Cluster API on the management cluster: core, CAPK and the Talos providers.
Imports core, tenant (golden images) and stacks.config.
"""
