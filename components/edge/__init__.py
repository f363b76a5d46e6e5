"""The edge: Traefik (ingress) and cert-manager (certificates, ClusterIssuers).
Imports core and stacks.config.
"""
