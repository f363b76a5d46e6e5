"""Operations across the platform: encrypted backups to OVHcloud Object Storage.
Imports core, tenant (pool names) and stacks.config.
"""
