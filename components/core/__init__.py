"""The shared kernel: contracts between services, Kubernetes object registration, namespaces and network policies,
Helm helpers, protection, timeouts, rotation, release manifests, the bootstrap HTTP client. Imports only stacks.config.
"""
