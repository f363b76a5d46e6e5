"""Policy as code for weebo-platform.

``policy.rules`` holds the rules as plain functions over resource records (the shape of
``plan.json``); ``policy.pack`` adapts them to a Pulumi CrossGuard policy pack
(``pulumi preview --policy-pack policy``); ``offline.plan`` runs them over every offline plan.
"""
