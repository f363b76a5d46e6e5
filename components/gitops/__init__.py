"""GitOps: ArgoCD for the platform and the tenants' applications.
Imports core, edge and stacks.config.
"""
