"""The platform DNS zone: Bind9 authoritative for it and ExternalDNS publishing into it.
Imports core, edge and stacks.config.
"""
