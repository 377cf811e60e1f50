"""Check modules: code that runs ON the target.

Every file here is standard-library only and Python 3.6 syntax. The control node reads each
module's MODULE/EXAMPLES metadata (for `checkrun doc` and the JSON schema) and ships the source
of the modules a batch needs to the target, where `_batch.py` runs them.
"""
