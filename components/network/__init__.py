"""The network: Cilium (CNI, kube-proxy replacement, Hubble, LB IPAM).
Imports core, edge (Hubble UI's forward-auth route) and stacks.config.
"""
