"""The components, one package per part of the architecture (README, "Code layout"); ``core`` is the
shared kernel every package may import. Each package's docstring says what it may import.

Six modules stay flat here because they define dynamic providers: the engine stores a pickled
reference to the provider class (``components.<module>.<Class>``) in each resource's state
(``__provider``) and imports it from there to delete or refresh that resource, so moving them would
break deletes and refreshes of resources created before the move: ``authentik_ready``,
``authentik_token``, ``identity`` (the Authentik objects), ``kube_api_ready``, ``talos_upgrade``,
``vault_bootstrap``.
"""
