"""The management cluster's hosts: OVH servers, Talos machine-config patches, the Talos management cluster and an
existing cluster (dev). Imports core, the API gate and upgrades (components.kube_api_ready, .talos_upgrade), stacks.config.
"""
