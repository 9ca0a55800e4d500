import no_such_module_for_the_selftest  # noqa: F401  (the conftest cannot load)
