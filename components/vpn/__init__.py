"""The platform VPN: NetBird and its routing peer inside the management cluster.
Imports core and stacks.config.
"""
