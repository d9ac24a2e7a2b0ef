"""Python client stubs of alertstream, generated from proto/ by clients/python/generate.sh."""
