"""Virtualization on the management cluster: KubeVirt, CDI and node-local storage.
Imports core and stacks.config.
"""
