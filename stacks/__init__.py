"""The program: the config model (``config``, with ``loader`` reading the stack file as the CLI
hands it over, and ``facts``, the platform's fixed names and rules that validation checks against),
the composition (``environment``) and its entry point (``program``).

Layers, bottom up: ``stacks.facts`` (nothing of the program) ← ``stacks.config``/``stacks.loader``
(only ``versions``, pydantic, pulumi, never a component, not even inside a function)
← ``components`` ← ``stacks.environment`` ← ``stacks.program``. Components import the config model
and nothing else from here, so no import runs up from a component into the composition; nothing
here imports ``offline`` (``tests/test_layering.py`` walks the imports and enforces both).
"""
