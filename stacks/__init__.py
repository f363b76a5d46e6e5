"""The program: the config model (``config``, with ``loader`` reading the stack file as the CLI
hands it over), the composition (``environment``) and its entry point (``program``).

Layers, bottom up: ``stacks.config``/``stacks.loader`` (on import: only ``versions``, pydantic, pulumi)
← ``components`` ← ``stacks.environment`` ← ``stacks.program``. Components import the config model
and nothing else from here, so no import runs up from a component into the composition; nothing
here imports ``offline`` (``tests/test_layering.py`` walks the imports and enforces both).
"""
