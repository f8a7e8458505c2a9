"""Every test folder can import the helper modules at this level (train_helpers): pytest
puts the folder of this conftest on sys.path."""
